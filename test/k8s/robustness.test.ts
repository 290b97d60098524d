// Faults that need no attacker, against the real API server: a watch whose connection goes
// silent, an API outage (how hard the watches retry), a report larger than the operator
// takes, and certificates rotated under a running operator and agent.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { ReportQueue } from '../../src/agent/report-queue.js';
import { Reporter } from '../../src/agent/reporter.js';
import { connect } from '../../src/k8s/client.js';
import { connectApi, type ApiConnection } from '../../src/k8s/api-connection.js';
import { Watched } from '../../src/k8s/watched.js';
import type { Report } from '../../src/cluster/report.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import { startReportServer } from '../../src/operator/report-server.js';
import { apiServerKeys } from '../../src/operator/api-server-keys.js';
import { tokenReviewAuthenticator } from '../../src/operator/token-authenticator.js';
import { eventually, selfSignedCertificate } from '../../support/cluster.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { hasTool } from '../../support/prereq.js';

const NS = 'kps-robust';
const logger = createLogger('silent');

/** A TCP relay to the API server whose open connections can be frozen: bytes stop, sockets stay. */
class FreezableRelay {
  private readonly open = new Set<{ inbound: Socket; outbound: Socket }>();
  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: number): Promise<FreezableRelay> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const relay = new FreezableRelay(server, (server.address() as { port: number }).port);
    server.on('connection', (inbound) => {
      const outbound = netConnect(target, '127.0.0.1');
      const pair = { inbound, outbound };
      relay.open.add(pair);
      inbound.pipe(outbound).pipe(inbound);
      const end = () => {
        relay.open.delete(pair);
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on('error', end).on('close', end);
      outbound.on('error', end).on('close', end);
    });
    return relay;
  }

  /** A half-open path: nothing passes either way on the connections open now. */
  freeze(): number {
    for (const { inbound, outbound } of this.open) {
      inbound.unpipe(outbound);
      outbound.unpipe(inbound);
      inbound.pause();
      outbound.pause();
    }
    const n = this.open.size;
    this.open.clear();
    return n;
  }

  close(): void {
    this.server.close();
  }
}

async function kubeconfigFor(cp: ControlPlane, port: number, name: string): Promise<string> {
  const doc = JSON.parse(await readFile(cp.kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  doc.clusters[0]!.cluster.server = `https://127.0.0.1:${port}`;
  const path = join(cp.dir, name);
  await writeFile(path, JSON.stringify(doc));
  return path;
}

const configMaps = (api: ApiConnection, options: { watchTimeoutSeconds?: number } = {}) =>
  new Watched<V1ConfigMap>({
    api,
    path: `/api/v1/namespaces/${NS}/configmaps`,
    logger,
    onChange: () => undefined,
    ...options,
  });

const createConfigMap = (cp: ControlPlane, name: string) =>
  cp.api('POST', `/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: {} });

function servedCertificate(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: undefined }, () => {
      const fingerprint = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.end();
      resolve(fingerprint);
    });
    s.on('error', reject);
  });
}

const sourceReport = (i: number, ports: number) => ({
  source: `2001:db8:ffff:ffff:ffff:ffff:${(i >> 8).toString(16)}:${(i & 255).toString(16)}`,
  ports: Array.from({ length: ports }, (_, p) => 60000 + p),
});

describe('robustness against the real API server', { concurrency: false }, () => {
  const why = process.getuid?.() !== 0 ? 'needs root' : !hasTool('openssl') ? 'needs openssl' : undefined;
  if (why && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why}`);
  const env = useControlPlane();
  let cp: ControlPlane;
  let token: string;
  const skip = () => !!why || !env.cp;

  before(async () => {
    if (skip()) return;
    cp = env.cp!;
    await cp.kubectl(['create', 'namespace', NS]);
    await cp.kubectl(['-n', NS, 'create', 'serviceaccount', 'agent']);
    token = (await cp.kubectl(['-n', NS, 'create', 'token', 'agent', '--audience', 'kube-portsentry'])).stdout.trim();
  });

  /** The operator's report endpoint (real TokenReview) and a Reporter posting to it. */
  async function reportPath(tls: { cert: string; key: string }, reporter: { caFile: string; maxReportBytes?: number }) {
    const received: Report[] = [];
    const kube = connect(cp.kubeconfig);
    const server = await startReportServer({
      address: '127.0.0.1:0',
      tls,
      tlsReloadMs: 200,
      authenticate: tokenReviewAuthenticator(kube, { audience: 'kube-portsentry', subject: `system:serviceaccount:${NS}:agent`, keys: apiServerKeys(kube, logger) }, logger),
      allowedUser: `system:serviceaccount:${NS}:agent`,
      // A token of `kubectl create token`, bound to no pod: this test is about sizes and certificates.
      allowUnboundTokens: true,
      isLeader: () => true,
      accept: async (r) => void received.push(r),
      logger,
      metrics: new OperatorMetrics(),
    });
    const port = (server.address() as { port: number }).port;
    const tokenFile = join(cp.dir, 'agent.token');
    await writeFile(tokenFile, token);
    const queue = new ReportQueue(10_000);
    const r = new Reporter({
      urls: [`https://127.0.0.1:${port}`],
      caFile: reporter.caFile,
      tokenFile,
      node: 'node-1',
      policy: () => 'default',
      queue,
      intervalMs: 20,
      logger,
      metrics: new Metrics(false),
      ...(reporter.maxReportBytes ? { maxReportBytes: reporter.maxReportBytes } : {}),
    });
    r.start();
    const sources = () => new Set(received.flatMap((x) => x.sources.map((s) => s.source)));
    return {
      port,
      queue,
      sources,
      stop: async () => {
        await r.stop();
        server.close();
      },
    };
  }

  test('a silent (half-open) watch is restarted within its liveness bound, and sees what changed', async (t) => {
    if (skip()) return t.skip(why ?? env.why);
    const relay = await FreezableRelay.start(Number(new URL(cp.url).port));
    const api = await connectApi(await kubeconfigFor(cp, relay.port, 'relay.kubeconfig'));
    const watched = configMaps(api, { watchTimeoutSeconds: 2 });
    try {
      watched.start();
      await watched.synced;
      await createConfigMap(cp, 'before-freeze');
      await eventually('the watch sees a change', async () => !!watched.get('before-freeze', NS));
      const frozen = relay.freeze();
      t.diagnostic(`froze ${frozen} connection(s)`);
      const started = Date.now();
      await createConfigMap(cp, 'after-freeze');
      await eventually('a fresh watch sees the change made while the old one hung', async () => !!watched.get('after-freeze', NS), 15_000);
      t.diagnostic(`seen ${Date.now() - started} ms after the freeze`);
    } finally {
      watched.stop();
      relay.close();
    }
  });

  test('a report over the operator limit is split and resent: every source arrives', async (t) => {
    if (skip()) return t.skip(why ?? env.why);
    const tls = await selfSignedCertificate(cp.dir, 'split');
    // The agent aims at 4 MiB, the operator takes 1 MiB: its first batch gets a 413.
    const path = await reportPath(tls, { caFile: tls.cert, maxReportBytes: 4 << 20 });
    try {
      for (let i = 0; i < 1000; i++) {
        const { source, ports } = sourceReport(i, 15);
        for (const port of ports) path.queue.add(source, { protocol: 'tcp', port, type: 'syn', time: Date.now() }, false, false);
      }
      await eventually('all 1,000 sources at the operator', async () => path.sources().size === 1000, 20_000);
    } finally {
      await path.stop();
    }
  });

  test('a rotated report-server certificate and agent CA take effect without a restart', async (t) => {
    if (skip()) return t.skip(why ?? env.why);
    const first = await selfSignedCertificate(cp.dir, 'first');
    const second = await selfSignedCertificate(cp.dir, 'second');
    // The files the operator and agent were started with, as a Secret volume would hold them.
    const served = { cert: join(cp.dir, 'served.crt'), key: join(cp.dir, 'served.key') };
    const caFile = join(cp.dir, 'agent-ca.crt');
    await writeFile(served.cert, await readFile(first.cert));
    await writeFile(served.key, await readFile(first.key));
    await writeFile(caFile, await readFile(first.cert));
    const path = await reportPath(served, { caFile });
    try {
      path.queue.add('198.51.100.1', { protocol: 'tcp', port: 1, type: 'syn', time: Date.now() }, false, false);
      await eventually('a report with the first certificate', async () => path.sources().has('198.51.100.1'));
      // cert-manager renews: new key and certificate, and the agents' CA with them.
      await writeFile(served.key, await readFile(second.key));
      await writeFile(served.cert, await readFile(second.cert));
      await writeFile(caFile, await readFile(second.cert));
      const wanted = new X509Certificate(await readFile(second.cert)).fingerprint256;
      const secondCa = await readFile(second.cert, 'utf8');
      await eventually('the operator serves the new certificate', async () => (await servedCertificate(path.port, secondCa).catch(() => '')) === wanted, 10_000);
      path.queue.add('198.51.100.2', { protocol: 'tcp', port: 1, type: 'syn', time: Date.now() }, false, false);
      await eventually('a report through the new certificate, trusted by the new CA', async () => path.sources().has('198.51.100.2'), 10_000);
    } finally {
      await path.stop();
    }
  });

  test('a 30 s API outage: watch retries back off (capped at 15 s), and the watch recovers', async (t) => {
    if (skip()) return t.skip(why ?? env.why);
    const attempts: number[] = [];
    const api = await connectApi(cp.kubeconfig, (_verb, resource, code) => {
      if (resource === 'configmaps' && code === 'error') attempts.push(Date.now());
    });
    const watched = configMaps(api);
    try {
      watched.start();
      await watched.synced;
      await cp.stopApiServer();
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 30_000));
      const during = attempts.filter((a) => a >= started).length;
      const gaps = attempts.slice(1).map((a, i) => a - attempts[i]!);
      t.diagnostic(`${during} failed requests in 30 s of outage; gaps ${gaps.map((g) => (g / 1000).toFixed(1)).join(' ')} s`);
      await cp.startApiServer();
      await createConfigMap(cp, 'after-outage');
      await eventually('the watch recovers after the outage', async () => !!watched.get('after-outage', NS), 30_000);
      // 0.5 s doubling to 15 s, with jitter, is at most 9 tries in 30 s; every 0.5 s was 60.
      assert.ok(during <= 10, `${during} requests in 30 s of outage`);
      assert.ok(Math.max(...gaps) <= 15_500, `a retry waited ${Math.max(...gaps)} ms`);
    } finally {
      watched.stop();
    }
  });
});
