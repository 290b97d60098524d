// The operator's RSS with 0, 10,000 and 100,000 BlockedHosts in force (issue 17, item 3), in
// one run against a real API server (no nodes: only the operator and its caches). Each
// figure is a fresh operator started with that many BlockedHosts in the API, read once it
// leads, its portsentry_blockedhosts gauge is right and it has settled; the ratios compare
// with the operator's start with none, and 100,000 with 10,000, in the same run.
//   node dist/bench/operator-memory.js [--counts 10000,100000] [--out FILE]
// The BlockedHosts are manual (no expiry, so none is deleted) with addresses in
// 2001:db8:ffff::/48, made 32 at a time.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { blockedHostName } from '../src/k8s/objects.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { freePort } from '../support/free-port.js';
import { hasTool } from '../support/prereq.js';
import { CLI, SentryProcess } from '../support/sentry-process.js';
import { metricValue, rssMiB } from './cluster-setup.js';
import { formatTable, progress, type Figure } from './harness.js';

const USAGE = 'usage: node dist/bench/operator-memory.js [--counts N,N...] [--out FILE]';
const NS = 'kube-portsentry';
const SETTLE_MS = 5000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const address = (i: number): string => `2001:db8:ffff:${((i >>> 16) & 0xffff).toString(16)}:${(i & 0xffff).toString(16)}::1`;

async function createRange(cp: ControlPlane, from: number, to: number, concurrency = 32): Promise<number> {
  const t0 = performance.now();
  let next = from;
  const worker = async () => {
    while (next < to) {
      const a = address(next++);
      const body = { apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: blockedHostName(a) }, spec: { address: a, source: 'manual', reason: 'bench: operator memory' } };
      const r = await cp.api('POST', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', body);
      if (r.status !== 201) throw new Error(`creating a BlockedHost: HTTP ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (to - from) / ((performance.now() - t0) / 1000);
}

/** A fresh operator until it leads with `count` manual BlockedHosts counted; its RSS then. */
async function operatorRss(cp: ControlPlane, count: number, run: number): Promise<{ rssMiB: number; syncedMs: number }> {
  const [reports, metrics] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [
    CLI, 'operator', '--namespace', NS, '--identity', `memory-${run}`, '--kubeconfig', cp.kubeconfig,
    '--listen-address', `127.0.0.1:${reports}`, '--metrics-address', `127.0.0.1:${metrics}`, '--lease-duration', '3s',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const op = SentryProcess.attach(child);
  try {
    const t0 = performance.now();
    for (const deadline = Date.now() + 600_000; ; await sleep(100)) {
      if (Date.now() > deadline) throw new Error(`the operator did not count ${count} BlockedHosts within 600 s`);
      if (child.exitCode !== null) throw new Error(`the operator exited (${child.exitCode})`);
      const text = await fetch(`http://127.0.0.1:${metrics}/metrics`).then((r) => r.text(), () => '');
      if (metricValue(text, 'portsentry_leader') === 1 && metricValue(text, 'portsentry_blockedhosts{source="manual"}') === count) break;
    }
    const syncedMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    return { rssMiB: rssMiB(child.pid!), syncedMs };
  } finally {
    await op.stop();
  }
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({ options: { counts: { type: 'string', default: '10000,100000' }, out: { type: 'string', default: 'bench-results/operator-memory.json' } }, strict: true }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const counts = values.counts!.split(',').map(Number);
  if (counts.some((n, i) => !Number.isInteger(n) || n < 1 || n > 1_000_000 || (i > 0 && n <= counts[i - 1]!))) {
    process.stderr.write(`--counts must be increasing integers from 1 to 1,000,000\n${USAGE}\n`);
    return 2;
  }
  if (!hasTool('go')) {
    process.stderr.write('bench operator-memory needs go (to build the control plane)\n');
    return 2;
  }
  const out = resolve(values.out!);
  const started = performance.now();
  const cp = await startControlPlane();
  const figures: Figure[] = [];
  const notes: Record<string, number> = {};
  try {
    await cp.kubectl(['apply', '-f', fileURLToPath(new URL('../../crds/', import.meta.url))]);
    await cp.kubectl(['wait', '--for', 'condition=established', 'crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io']);
    await cp.kubectl(['create', 'namespace', NS]);
    progress('operator with no BlockedHosts (baseline)');
    const none = await operatorRss(cp, 0, 0);
    figures.push({ id: 'operator.memory.0', name: 'operator RSS, no BlockedHosts', value: none.rssMiB, unit: 'MiB', extra: { syncedMs: none.syncedMs } });
    let made = 0;
    let previous: { n: number; rss: number } | undefined;
    for (const [i, n] of counts.entries()) {
      progress(`creating BlockedHosts ${made + 1}-${n}`);
      notes[`createRate.${n}`] = await createRange(cp, made, n);
      made = n;
      progress(`operator with ${n} BlockedHosts`);
      const r = await operatorRss(cp, n, i + 1);
      figures.push({
        id: `operator.memory.${n}`,
        name: `operator RSS, ${n.toLocaleString('en-US')} BlockedHosts`,
        value: r.rssMiB,
        unit: 'MiB',
        baseline: previous ? `${previous.n.toLocaleString('en-US')} BlockedHosts` : 'no BlockedHosts',
        baselineId: previous ? `operator.memory.${previous.n}` : 'operator.memory.0',
        ratio: r.rssMiB / (previous?.rss ?? none.rssMiB),
        extra: { syncedMs: r.syncedMs, perBlockedHostKiB: ((r.rssMiB - none.rssMiB) * 1024) / n },
      });
      previous = { n, rss: r.rssMiB };
    }
  } finally {
    await cp.stop();
  }
  const report = {
    benchmark: 'operator-memory',
    timestamp: new Date().toISOString(),
    elapsedMs: performance.now() - started,
    machine: { node: process.version, cpuModel: cpus()[0]?.model, cores: cpus().length },
    settings: { counts },
    notes,
    figures,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`kube-portsentry operator memory: a real API server, the operator alone\nratios compare with a baseline measured in this run\n\n${formatTable(figures)}\n\n${(report.elapsedMs / 1000).toFixed(1)} s; JSON written to ${out}\n`);
  return 0;
}

process.exit(await main());
