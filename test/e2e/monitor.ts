// A real Prometheus (Debian's package) on the monitoring host: it scrapes every agent (node
// address, port 9109) and every operator pod (pod address, 9110) over the fabric, as a
// cluster's Prometheus would, and evaluates the chart's alert rules.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runProgram } from '../../src/respond/run-program.js';
import { createCgroup } from './cgroups.js';
import { launch } from './launch.js';
import { CGROUP, MONITOR, STATE } from './layout.js';

const DIR = `${STATE}/monitor`;
const PORT = 9090;

export interface Targets {
  agents: string[];
  operators: string[];
}

export async function startPrometheus(targets: Targets, ruleGroups: unknown[]): Promise<void> {
  await mkdir(join(DIR, 'data'), { recursive: true });
  await writeFile(join(DIR, 'rules.yaml'), stringify({ groups: ruleGroups }));
  await writeTargets(targets);
  await writeFile(
    join(DIR, 'prometheus.yml'),
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(DIR, 'rules.yaml')],
      scrape_configs: [
        { job_name: 'kube-portsentry-agent', file_sd_configs: [{ files: [join(DIR, 'agents.json')], refresh_interval: '1s' }] },
        { job_name: 'kube-portsentry-operator', file_sd_configs: [{ files: [join(DIR, 'operators.json')], refresh_interval: '1s' }] },
      ],
    }),
  );
  await createCgroup(`${CGROUP}/monitor`);
  await launch(`${CGROUP}/monitor`, MONITOR.ns, join(DIR, 'prometheus.log'), [
    'prometheus', `--config.file=${join(DIR, 'prometheus.yml')}`, `--storage.tsdb.path=${join(DIR, 'data')}`,
    `--web.listen-address=127.0.0.1:${PORT}`,
  ]);
}

/** Targets change as pods are replaced; Prometheus rereads the files. */
export async function writeTargets(targets: Targets): Promise<void> {
  await writeFile(join(DIR, 'agents.json'), JSON.stringify([{ targets: targets.agents.map((a) => `${a}:9109`) }]));
  await writeFile(join(DIR, 'operators.json'), JSON.stringify([{ targets: targets.operators.map((a) => `${a}:9110`) }]));
}

/** GET on Prometheus's HTTP API, from the monitoring host; the parsed `data`. */
export async function prometheusApi<T = unknown>(path: string): Promise<T> {
  const script = `fetch(${JSON.stringify(`http://127.0.0.1:${PORT}`)} + process.argv[1]).then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e.message); process.exit(1); })`;
  const { stdout } = await runProgram(['ip', 'netns', 'exec', MONITOR.ns, process.execPath, '-e', script, path], { timeoutMs: 30_000, maxOutputBytes: 64 << 20 });
  const body = JSON.parse(stdout) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
  return body.data;
}

export const query = (expr: string) =>
  prometheusApi<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(
    `/api/v1/query?query=${encodeURIComponent(expr)}`,
  );
