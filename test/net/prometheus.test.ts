// A real Prometheus (Debian's package) scrapes a real standalone sentry, and evaluates
// the chart's alert rules on what it scraped. Both run inside the test's target network
// namespace and talk over its loopback only; nmap scans from the scanner namespace.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { find, helmReady, renderChart } from '../../support/helm.js';
import { TARGET_V4, TARGET_V6, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { SentryProcess } from '../../support/sentry-process.js';

const METRICS = '127.0.0.1:9109';
const PROMETHEUS = '127.0.0.1:9090';

let net: TestNet | undefined;
let dir: string | undefined;
const children: ChildProcess[] = [];

before(async () => {
  if (process.getuid?.() !== 0) return;
  net = await TestNet.create();
  dir = await mkdtemp(join(tmpdir(), 'kps-prometheus-'));
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await net?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** GET against Prometheus's HTTP API, from inside the target namespace. */
async function prom<T>(n: TestNet, path: string): Promise<T> {
  const script = `fetch(${JSON.stringify(`http://${PROMETHEUS}${path}`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const { stdout } = await n.exec(n.target, [process.execPath, '-e', script]);
  const body = JSON.parse(stdout) as { status: string; data: T };
  assert.equal(body.status, 'success', stdout);
  return body.data;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

type Vector = { result: { metric: Record<string, string>; value: [number, string] }[] };

test('Prometheus scrapes the sentry, sees the nmap scan, and the chart\'s scan-burst alert fires', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nmap', 'prometheus'] }) || !helmReady(t)) return;
  const n = net!;

  // The chart's rules, with a scan-burst threshold any scan passes.
  const { docs } = await renderChart({ prometheusRule: { enabled: true, scanBurstThreshold: 0 } });
  await writeFile(join(dir!, 'rules.yaml'), stringify({ groups: (find(docs, 'PrometheusRule').spec as { groups: unknown }).groups }));
  await writeFile(
    join(dir!, 'prometheus.yml'),
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(dir!, 'rules.yaml')],
      // The only target: the sentry on the target namespace's loopback.
      scrape_configs: [{ job_name: 'sentry', static_configs: [{ targets: [METRICS], labels: { node: 'target' } }] }],
    }),
  );
  await writeFile(
    join(dir!, 'policy.yaml'),
    'apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nmetadata:\n  name: scrape\nspec:\n' +
      '  tcp:\n    mode: bind\n    ports: [1, 79, 111, 6667]\n  udp:\n    mode: "off"\n  response:\n    tcp: alert\n  files: {history: "", blocked: ""}\n',
  );

  const sentry = await SentryProcess.start(n, { args: ['--policy', join(dir!, 'policy.yaml'), '--metrics-address', METRICS] });
  children.push(sentry.child);
  const prometheus = n.spawn(n.target, [
    'prometheus',
    `--config.file=${join(dir!, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir!, 'data')}`,
    `--web.listen-address=${PROMETHEUS}`,
  ]);
  children.push(prometheus);
  const promLog: string[] = [];
  prometheus.stderr!.on('data', (d: Buffer) => promLog.push(d.toString()));
  try {
    const up = await until('the sentry target to be up', 30_000, async () => {
      const v = await prom<Vector>(n, '/api/v1/query?query=up');
      return v.result.find((r) => r.value[1] === '1');
    });
    assert.deepEqual(up.metric, { __name__: 'up', instance: METRICS, job: 'sentry', node: 'target' });
    const targets = await prom<{ activeTargets: { scrapeUrl: string }[] }>(n, '/api/v1/targets');
    assert.deepEqual(targets.activeTargets.map((x) => x.scrapeUrl), [`http://${METRICS}/metrics`], 'Prometheus scrapes only the sentry on loopback');

    // Two scanners' worth of scans: IPv4, then IPv6 from the same namespace.
    await n.exec(n.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,79,111,6667', TARGET_V4]);
    const scans = await until('portsentry_scans_detected_total > 0 in Prometheus', 30_000, async () => {
      const v = await prom<Vector>(n, `/api/v1/query?query=${encodeURIComponent('sum(portsentry_scans_detected_total) > 0')}`);
      return v.result[0];
    });
    assert.equal(Number(scans.value[1]), 1);
    const probes = await prom<Vector>(n, `/api/v1/query?query=${encodeURIComponent('sum by (protocol, mode, type) (portsentry_probes_total)')}`);
    assert.deepEqual(probes.result.map((r) => r.metric), [{ protocol: 'tcp', mode: 'bind', type: 'connect' }]);
    assert.ok(Number(probes.result[0]!.value[1]) >= 1);

    // The first scan made the series (increase() cannot see a counter's first value);
    // the second raises it, and the rendered scan-burst rule fires on the real data.
    await n.exec(n.scanner, ['nmap', '-6', '-sT', '-Pn', '-n', '-p', '1,79,111,6667', TARGET_V6]);
    const firing = await until('PortSentryScanBurst to fire', 30_000, async () => {
      const alerts = await prom<{ alerts: { labels: Record<string, string>; state: string }[] }>(n, '/api/v1/alerts');
      return alerts.alerts.find((a) => a.labels.alertname === 'PortSentryScanBurst' && a.state === 'firing');
    });
    assert.equal(firing.labels.severity, 'warning');
    // The other alerts that need no agent or operator metrics stay quiet.
    const alerts = await prom<{ alerts: { labels: Record<string, string>; state: string }[] }>(n, '/api/v1/alerts');
    assert.ok(!alerts.alerts.some((a) => a.labels.alertname === 'PortSentryActionFailures'));
  } catch (err) {
    throw new Error(`${(err as Error).message}\nprometheus log tail:\n${promLog.join('').split('\n').slice(-20).join('\n')}`);
  } finally {
    prometheus.kill('SIGTERM');
    await sentry.stop();
  }
});
