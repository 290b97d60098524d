// Cluster benchmark: a real API server, the operator and three agents in node namespaces
// (bench/cluster-setup.ts). `npm run bench:cluster -- [--quick] [--out FILE]`; needs root,
// nft, openssl and go (for the control plane). Measures:
//  1. detection to block, cluster-wide: one SYN from a fresh source to a tripwire port on
//     node 1 (trigger 0, scope cluster), timed from its send to the source's addition to
//     node 3's nftables set (and node 2's), as `nft monitor` in each node reports it; the
//     same probe's addition to node 1's own set is the baseline;
//  2. operator scale: --blocked-hosts BlockedHosts in the real API server (1% manual, and 1%
//     more already expired): operator start to caches synced, leader, expired ones deleted
//     and portsentry_blockedhosts right; an agent restarted on an empty node set until it
//     holds them all; operator and agent RSS; the API requests the operator makes per
//     detection (portsentry_operator_api_requests_total, lease renewals left out), and the
//     detection-to-block latency again with all of them in force. Baselines: the same
//     starts with no BlockedHosts, and part 1, in the same run.
//  3. the kernel fast path against the raw path (bench/cluster-fastpath.ts): SYNs a scanner
//     gets through on node 1 after its first probe, and on nodes 2 and 3 until the
//     BlockedHost reaches them.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { TestNode } from '../support/cluster.js';
import { blockedHostName } from '../src/k8s/objects.js';
import { DEFAULT_INSTANCE, firewallNames } from '../src/respond/firewall/owner.js';
import {
  AGENT_METRICS,
  BenchCluster,
  BULK_LIMIT,
  bulkAddress,
  counterSeries,
  metricValue,
  missingPrerequisites,
  POLICY,
  probeSource,
  rssMiB,
  type SetWatcher,
} from './cluster-setup.js';
import { agentMemory } from './cluster-memory.js';
import { STAGE_MEANING, STAGES, stageTimes, type Stage } from './cluster-stages.js';
import { formatTable, progress, type Figure } from './harness.js';
import { fastPathPart } from './cluster-fastpath.js';

/** The agents' nftables table (they run with the default instance). */
const NFT_TABLE = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE }).table;

const USAGE = `usage: node dist/bench/cluster.js [--quick] [--sources N] [--blocked-hosts N] [--scale-sources N] [--large N] [--import N] [--trains N] [--out FILE]
  --quick            fewer sources (30), BlockedHosts (1,000) and imported ones (1,000)
  --sources N        fresh sources probed for the latency figures (default 200)
  --blocked-hosts N  BlockedHosts in force for the scale figures (default 10,000)
  --scale-sources N  sources probed again with them in force (default 50)
  --large N          then the scale figures again with N in force, against --blocked-hosts (default 0: none;
                     e.g. 100000)
  --import N         then N manual BlockedHosts created at once while a scan runs (default 10,000; 0: none)
  --trains N         probe trains for the fast path and for the raw path each (default 20; 0: no fast-path part)
  --out FILE         where the JSON goes (default bench-results/cluster.json)`;

const REQUESTS = 'portsentry_operator_api_requests_total';
const ms = (ns: bigint): number => Number(ns) / 1e6;
const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));
/** `p`, or an error naming `what` once `msec` have passed (the timer does not outlive it). */
async function within<T>(p: Promise<T>, msec: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${msec / 1000} s`)), msec)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

interface Plan {
  sources: number;
  blockedHosts: number;
  scaleSources: number;
  trains: number;
  /** BlockedHosts in force for the large phase, measured against `blockedHosts`; 0: no large phase. */
  large: number;
  /** Manual BlockedHosts created at once while a scan runs (the mass import); 0: none. */
  import: number;
}

/** The etcd database file's size, in MiB (what etcd_mvcc_db_total_size_in_bytes reports). */
function etcdMiB(b: BenchCluster): number {
  return statSync(`${b.cp.dir}/etcd/member/snap/db`).size / 1048576;
}

/** p50 and p99 of each stage on the way to node 3's set. */
function stageFigures(prefix: string, label: string, run: LatencyRun, baseline?: string): Figure[] {
  const out: Figure[] = [];
  for (const stage of STAGES)
    for (const [q, name] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
      const id = `${prefix}.${stage.replace(/\W+/g, '-')}.${name}`;
      const value = quantile(run.stages[stage], q);
      const base = baseline ? `${baseline}.${stage.replace(/\W+/g, '-')}.${name}` : undefined;
      out.push({ id, name: `stage ${stage}${label}, ${name}`, value, unit: 'ms', extra: { samples: run.stages[stage].length, meaning: STAGE_MEANING[stage] }, ...(base ? { baseline: 'part 1', baselineId: base } : {}) });
    }
  return out;
}

/** Fills in ratios of figures whose baseline is another figure of the run. */
function linkRatios(figures: Figure[]): void {
  const byId = new Map(figures.map((f) => [f.id, f]));
  for (const f of figures) if (f.baselineId && f.ratio === undefined) f.ratio = f.value / (byId.get(f.baselineId)?.value ?? NaN);
}

interface LatencyRun {
  local: number[];
  node2: number[];
  node3: number[];
  everywhere: number[];
  missing: number;
  /** API requests per detection, lease renewals left out, and the breakdown by verb and resource. */
  perDetection: number;
  byRequest: Record<string, number>;
  /** Milliseconds spent in each stage on the way to node 3's set, by source (cluster-stages.ts). */
  stages: Record<Stage, number[]> & { slowest: Record<string, number>[] };
}

/**
 * One probe at a time from fresh sources to node 1; each is timed to every node's set.
 * With `while_`, probes go only while it is pending (at most `count`).
 */
async function latencyRun(b: BenchCluster, first: number, count: number, while_?: Promise<unknown>): Promise<LatencyRun> {
  const [n1, n2, n3] = b.nodes as [TestNode, TestNode, TestNode];
  const [w1, w2, w3] = [n1, n2, n3].map((n) => b.watchers.get(n.name)!) as [SetWatcher, SetWatcher, SetWatcher];
  const run: LatencyRun = { local: [], node2: [], node3: [], everywhere: [], missing: 0, perDetection: NaN, byRequest: {}, stages: stageTimes(new Map(), new Map(), { node1: [], operator: [], node3: [] }) };
  let pending = while_ !== undefined;
  void while_?.finally(() => (pending = false));
  const sentAt = new Map<string, bigint>();
  const node3At = new Map<string, bigint>();
  const before = counterSeries(await b.operatorMetrics(), REQUESTS);
  let probed = 0;
  for (let i = first; i < first + count && (while_ === undefined || pending); i++, probed++) {
    const source = probeSource(i);
    const sent = await b.probe(source, n1.v4);
    sentAt.set(source, sent);
    const [t1, t2, t3] = await Promise.all([w1, w2, w3].map((w) => w.waitFor(source, sent, 10_000)));
    if (t1 === null || t2 === null || t3 === null) {
      run.missing++;
      continue;
    }
    node3At.set(source, t3!);
    run.local.push(ms(t1! - sent));
    run.node2.push(ms(t2! - sent));
    run.node3.push(ms(t3! - sent));
    run.everywhere.push(Math.max(ms(t2! - sent), ms(t3! - sent)));
    await sleep(20);
  }
  // The status write and the Events of the last detections.
  await sleep(3000);
  const after = counterSeries(await b.operatorMetrics(), REQUESTS);
  let total = 0;
  for (const [series, value] of after) {
    const delta = value - (before.get(series) ?? 0);
    if (delta === 0) continue;
    const labels = Object.fromEntries([...series.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${labels.verb} ${labels.resource} ${labels.code}`;
    run.byRequest[key] = delta;
    if (labels.resource !== 'leases') total += delta;
  }
  const detected = probed - run.missing;
  run.perDetection = detected > 0 ? total / detected : NaN;
  for (const list of [run.local, run.node2, run.node3, run.everywhere]) list.sort((a, c) => a - c);
  run.stages = stageTimes(sentAt, node3At, { node1: n1.agent!.lines, operator: b.operator!.lines, node3: n3.agent!.lines });
  return run;
}

interface OperatorStart {
  readyMs: number;
  leaderMs: number;
  reconciledMs: number;
  rssMiB: number;
}

/** Starts an operator and times it to caches synced, leader, and the BlockedHost gauge right. */
async function operatorStart(b: BenchCluster, expected: { detected: number; manual: number }): Promise<OperatorStart> {
  const t0 = performance.now();
  const op = b.startOperator();
  const since = () => performance.now() - t0;
  const ready = op.waitFor((l) => l.msg === 'operator ready', 600_000).then(since);
  const leader = op.waitFor((l) => l.msg === 'became leader', 600_000).then(since);
  // Awaited below; an operator that dies first ends the loop's wait as an error, not a crash.
  for (const p of [ready, leader]) p.catch(() => undefined);
  let reconciledMs = NaN;
  let exited: number | null | undefined;
  void op.exited.then((code) => (exited = code));
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(50)) {
    if (exited !== undefined) {
      const tail = op.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n');
      throw new Error(`the operator exited (${exited}) before it reached ${JSON.stringify(expected)} BlockedHosts; its last log lines:\n${tail}\n${op.stderr.join('').slice(-2000)}`);
    }
    const text = await b.operatorMetrics().catch(() => '');
    const detected = metricValue(text, 'portsentry_blockedhosts{source="detected"}');
    const manual = metricValue(text, 'portsentry_blockedhosts{source="manual"}');
    if (detected === expected.detected && manual === expected.manual && metricValue(text, 'portsentry_leader') === 1) {
      reconciledMs = since();
      break;
    }
  }
  if (Number.isNaN(reconciledMs)) throw new Error(`operator did not reach ${JSON.stringify(expected)} BlockedHosts within 600 s`);
  const result = { readyMs: await ready, leaderMs: await leader, reconciledMs, rssMiB: NaN };
  await sleep(2000);
  result.rssMiB = rssMiB(op.child.pid!);
  return result;
}

/** BlockedHosts in the API server right now (one cheap list request). */
async function countBlockedHosts(b: BenchCluster): Promise<number> {
  const r = await b.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts?limit=1');
  const body = r.body as { items: unknown[]; metadata: { remainingItemCount?: number } };
  return body.items.length + (body.metadata.remainingItemCount ?? 0);
}

/** Creates BlockedHosts with `concurrency` requests in flight; returns objects per second. */
async function createBulk(b: BenchCluster, bodies: object[], concurrency = 16): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      const r = await b.api('POST', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', body);
      if (r.status !== 201) throw new Error(`creating a BlockedHost: HTTP ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return bodies.length / ((performance.now() - t0) / 1000);
}

interface Bulk {
  bodies: object[];
  detected: number;
  manual: number;
  expired: number;
  addresses: Set<string>;
}

/** `count` BlockedHosts in force (1% manual) and 1% more already expired, from bulk address `offset` on. */
function bulkBodies(count: number, offset = 0): Bulk {
  const manual = Math.max(1, Math.round(count / 100));
  const expired = Math.max(1, Math.round(count / 100));
  const detected = count - manual;
  const inAnHour = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const aMinuteAgo = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const bodies: object[] = [];
  const addresses = new Set<string>();
  for (let i = 0; i < count + expired; i++) {
    const address = bulkAddress(offset + i);
    const kind = i < detected ? 'detected' : i < count ? 'manual' : 'expired';
    if (kind !== 'expired') addresses.add(address);
    bodies.push({
      apiVersion: 'kube-portsentry.io/v1alpha1',
      kind: 'BlockedHost',
      metadata: { name: blockedHostName(address) },
      spec: {
        address,
        reason: 'bench: bulk',
        source: kind === 'manual' ? 'manual' : 'detected',
        ...(kind === 'manual' ? {} : { policy: 'bench', expiresAt: kind === 'expired' ? aMinuteAgo : inAnHour }),
      },
    });
  }
  return { bodies, detected, manual, expired, addresses };
}

async function watchedPorts(b: BenchCluster, node: TestNode): Promise<number> {
  const text = await b.cluster.agentMetrics(node, AGENT_METRICS);
  return metricValue(text, 'portsentry_watched_ports{protocol="tcp",mode="stealth"}') ?? -1;
}

async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await fn().catch(() => false)); await sleep(200))
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
}

async function measure(b: BenchCluster, plan: Plan): Promise<{ figures: Figure[]; notes: Record<string, unknown> }> {
  const figures: Figure[] = [];
  const notes: Record<string, unknown> = {};
  const [n1, n2] = b.nodes as [TestNode, TestNode, TestNode];
  const add = (f: Figure) => figures.push(f);
  const vs = (value: number, base: number, baseline: string, baselineId: string) => ({ baseline, baselineId, ratio: value / base });

  progress('operator start with no BlockedHosts (baseline)');
  const op0 = await operatorStart(b, { detected: 0, manual: 0 });
  const agent0: number[] = [];
  for (const node of b.nodes) {
    const t0 = performance.now();
    await b.startAgent(node);
    agent0.push(performance.now() - t0);
  }
  await b.cp.kubectl(['apply', '-f', '-'], { input: POLICY });
  for (const node of b.nodes) await eventually(`${node.name} watches the tripwire port`, async () => (await watchedPorts(b, node)) === 1, 30_000);
  for (const node of b.nodes) await b.watch(node);
  await sleep(1000);
  const agentRss0 = rssMiB(n2.agent!.child.pid!);

  progress(`detection to block: ${plan.sources} fresh sources, one at a time, against node 1`);
  const small = await latencyRun(b, 0, plan.sources);
  notes.smallRun = { missing: small.missing, requests: small.byRequest, slowest: small.stages.slowest };
  for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99'], [1, 'max']] as const) {
    const local = quantile(small.local, q);
    add({ id: `latency.local.${label}`, name: `probe to node 1's own set (local), ${label}`, value: local, unit: 'ms', extra: { samples: small.local.length } });
    add({
      id: `latency.node3.${label}`,
      name: `probe to node 3's set (cluster-wide), ${label}`,
      value: quantile(small.node3, q),
      unit: 'ms',
      ...vs(quantile(small.node3, q), local, 'local', `latency.local.${label}`),
      extra: { samples: small.node3.length, missing: small.missing },
    });
  }
  add({
    id: 'latency.everywhere.p99',
    name: 'probe to nodes 2 and 3 both, p99',
    value: quantile(small.everywhere, 0.99),
    unit: 'ms',
    ...vs(quantile(small.everywhere, 0.99), quantile(small.local, 0.99), 'local', 'latency.local.p99'),
  });
  add({ id: 'requests.per-detection', name: 'operator API requests per detection (no leases)', value: small.perDetection, unit: 'requests', extra: { detections: plan.sources - small.missing } });
  figures.push(...stageFigures('stage', '', small));
  const etcd0 = etcdMiB(b);
  add({ id: 'etcd.size0', name: 'etcd database, no BlockedHosts but part 1', value: etcd0, unit: 'MiB' });

  if (plan.trains > 0) {
    const part = await fastPathPart(b, { trains: plan.trains, burst: 400, ms: 1000 });
    figures.push(...part.figures);
    Object.assign(notes, part.notes);
  }

  progress(`operator scale: ${plan.blockedHosts} BlockedHosts`);
  await b.stopOperator();
  await b.api('DELETE', '/apis/kube-portsentry.io/v1alpha1/blockedhosts');
  const bulk = bulkBodies(plan.blockedHosts);
  const inForce = bulk.detected + bulk.manual;
  // The agents follow the creations as they come; node 1's watcher says when they all have.
  const followed = b.watchers.get(n1.name)!.count(inForce, (a) => bulk.addresses.has(a));
  const createRate = await createBulk(b, bulk.bodies);
  add({ id: 'scale.create-rate', name: 'BlockedHosts created by the bench (16 in flight)', value: createRate, unit: 'objects/s', extra: { objects: bulk.bodies.length } });
  await within(followed, 600_000, 'node 1 did not get every BlockedHost');

  progress('operator start with them in place');
  const opN = await operatorStart(b, { detected: bulk.detected, manual: bulk.manual });
  const left = await countBlockedHosts(b);
  if (left !== inForce) throw new Error(`after the operator's start the API holds ${left} BlockedHosts, expected ${inForce} (expired ones not deleted?)`);
  const sizes = { blockedHosts: inForce, expiredAtStart: bulk.expired, manual: bulk.manual };
  for (const [key, label] of [['readyMs', 'caches synced'], ['leaderMs', 'leader'], ['reconciledMs', 'expired deleted, gauge right']] as const) {
    add({ id: `operator.start0.${key}`, name: `operator start to ${label}, no BlockedHosts`, value: op0[key], unit: 'ms' });
    add({
      id: `operator.start.${key}`,
      name: `operator start to ${label}, ${inForce} BlockedHosts`,
      value: opN[key],
      unit: 'ms',
      ...vs(opN[key], op0[key], 'no BlockedHosts', `operator.start0.${key}`),
      extra: sizes,
    });
  }
  add({ id: 'operator.rss0', name: 'operator RSS, no BlockedHosts', value: op0.rssMiB, unit: 'MiB' });
  add({ id: 'operator.rss', name: `operator RSS, ${inForce} BlockedHosts`, value: opN.rssMiB, unit: 'MiB', ...vs(opN.rssMiB, op0.rssMiB, 'no BlockedHosts', 'operator.rss0') });

  progress('agent restart on node 2 with an empty node set');
  await n2.agent!.stop();
  for (const set of ['blocked4', 'blocked6']) await b.cluster.exec(n2.ns, ['nft', 'flush', 'set', 'inet', NFT_TABLE, set]);
  const all = b.watchers.get(n2.name)!.count(inForce, (a) => bulk.addresses.has(a));
  const t0 = process.hrtime.bigint();
  await b.startAgent(n2);
  const readyMs = ms(process.hrtime.bigint() - t0);
  const allMs = ms((await within(all, 600_000, 'node 2 did not get every BlockedHost')) - t0);
  const agent0Median = [...agent0].sort((a, c) => a - c)[1]!;
  add({ id: 'agent.start0.ready', name: 'agent start to ready, no BlockedHosts (median of 3)', value: agent0Median, unit: 'ms' });
  add({ id: 'agent.start.ready', name: `agent start to ready, ${inForce} BlockedHosts`, value: readyMs, unit: 'ms', ...vs(readyMs, agent0Median, 'no BlockedHosts', 'agent.start0.ready') });
  add({ id: 'agent.start.all', name: `agent start to all ${inForce} in its node set`, value: allMs, unit: 'ms', ...vs(allMs, agent0Median, 'no BlockedHosts', 'agent.start0.ready') });
  await sleep(2000);
  const agentRss = rssMiB(n2.agent!.child.pid!);
  add({ id: 'agent.rss0', name: 'agent RSS, no BlockedHosts', value: agentRss0, unit: 'MiB' });
  add({ id: 'agent.rss', name: `agent RSS, ${inForce} BlockedHosts (restarted)`, value: agentRss, unit: 'MiB', ...vs(agentRss, agentRss0, 'no BlockedHosts', 'agent.rss0') });
  add({
    id: 'agent.rss.followed',
    name: `agent RSS, ${inForce} BlockedHosts (followed their creation)`,
    value: rssMiB(n1.agent!.child.pid!),
    unit: 'MiB',
    ...vs(rssMiB(n1.agent!.child.pid!), agentRss0, 'no BlockedHosts', 'agent.rss0'),
  });
  // The idle agent's RSS under each runtime setting, against the agent with the full client.
  figures.push(...(await agentMemory(b, n2, inForce, (a) => bulk.addresses.has(a))));

  progress(`detection to block with ${inForce} BlockedHosts in force: ${plan.scaleSources} fresh sources`);
  const large = await latencyRun(b, plan.sources, plan.scaleSources);
  notes.scaleRun = { missing: large.missing, requests: large.byRequest, slowest: large.stages.slowest };
  figures.push(...stageFigures('scale.stage', ` with ${inForce} BlockedHosts`, large, 'stage'));
  add({ id: 'etcd.size', name: `etcd database, ${inForce} BlockedHosts`, value: etcdMiB(b), unit: 'MiB', ...vs(etcdMiB(b), etcd0, 'part 1', 'etcd.size0') });
  for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99']] as const)
    add({
      id: `scale.latency.node3.${label}`,
      name: `probe to node 3's set with ${inForce} BlockedHosts, ${label}`,
      value: quantile(large.node3, q),
      unit: 'ms',
      ...vs(quantile(large.node3, q), quantile(small.node3, q), 'part 1', `latency.node3.${label}`),
      extra: { samples: large.node3.length, missing: large.missing },
    });
  add({
    id: 'scale.requests.per-detection',
    name: `operator API requests per detection with ${inForce} BlockedHosts`,
    value: large.perDetection,
    unit: 'requests',
    ...vs(large.perDetection, small.perDetection, 'part 1', 'requests.per-detection'),
  });
  let next = plan.sources + plan.scaleSources;
  let offset = bulk.bodies.length;
  // The scale run's detections are BlockedHosts too.
  const detectedNow = bulk.detected + plan.scaleSources - large.missing;
  let total = { detected: detectedNow, manual: bulk.manual, inForce: inForce + plan.scaleSources - large.missing, latency: large };
  if (plan.large > inForce) {
    const more = bulkBodies(plan.large - inForce, offset);
    offset += more.bodies.length;
    total = await largePhase(b, plan, { figures, notes, more, before: { ...total, bulk: inForce }, next });
    next += plan.scaleSources;
  }
  if (plan.import > 0) await importPhase(b, plan, { figures, notes, offset, next, inForce: total.inForce, baseline: total.latency, baselineId: plan.large > inForce ? 'large.latency.node3' : 'scale.latency.node3' });
  linkRatios(figures);
  return { figures, notes };
}

interface Phase {
  figures: Figure[];
  notes: Record<string, unknown>;
}

/**
 * The same figures as the scale part with `plan.large` BlockedHosts in force, each against
 * its value at `plan.blockedHosts` in this run: the remaining ones created in bulk (the
 * operator down, the agents following), operator start, an agent restarted on an empty node
 * set, RSS, etcd's size, API requests per detection, and cluster-wide latency.
 */
async function largePhase(
  b: BenchCluster,
  plan: Plan,
  p: Phase & { more: Bulk; before: { inForce: number; detected: number; manual: number; bulk: number; latency: LatencyRun }; next: number },
): Promise<{ detected: number; manual: number; inForce: number; latency: LatencyRun }> {
  const [n1, n2] = b.nodes as [TestNode, TestNode, TestNode];
  const add = (f: Figure) => p.figures.push(f);
  const { more, before } = p;
  const inForce = before.inForce + more.detected + more.manual;
  const at = `${inForce} BlockedHosts`;
  const base = `${before.inForce} BlockedHosts`;
  progress(`large phase: ${more.bodies.length} more BlockedHosts, ${inForce} in force`);
  await b.stopOperator();
  const followed = b.watchers.get(n1.name)!.count(more.detected + more.manual, (a) => more.addresses.has(a));
  const createRate = await createBulk(b, more.bodies);
  add({ id: 'large.create-rate', name: `BlockedHosts created by the bench up to ${inForce} (16 in flight)`, value: createRate, unit: 'objects/s', baselineId: 'scale.create-rate', baseline: base });
  await within(followed, 1_800_000, 'node 1 did not get every BlockedHost');
  const expected = { detected: before.detected + more.detected, manual: before.manual + more.manual };
  progress('large phase: operator start with them in place');
  const op = await operatorStart(b, expected);
  const left = await countBlockedHosts(b);
  if (left !== inForce) throw new Error(`after the operator's start the API holds ${left} BlockedHosts, expected ${inForce} (expired ones not deleted?)`);
  for (const [key, label] of [['readyMs', 'caches synced'], ['leaderMs', 'leader'], ['reconciledMs', 'expired deleted, gauge right']] as const)
    add({ id: `large.operator.start.${key}`, name: `operator start to ${label}, ${at}`, value: op[key], unit: 'ms', baseline: base, baselineId: `operator.start.${key}`, extra: { expiredAtStart: more.expired } });
  add({ id: 'large.operator.rss', name: `operator RSS, ${at}`, value: op.rssMiB, unit: 'MiB', baseline: base, baselineId: 'operator.rss' });
  progress('large phase: agent restart on node 2 with an empty node set');
  await n2.agent!.stop();
  for (const set of ['blocked4', 'blocked6']) await b.cluster.exec(n2.ns, ['nft', 'flush', 'set', 'inet', NFT_TABLE, set]);
  const all = b.watchers.get(n2.name)!.count(before.bulk + more.detected + more.manual, (a) => a.startsWith('100.'));
  const t0 = process.hrtime.bigint();
  await b.startAgent(n2);
  const readyMs = ms(process.hrtime.bigint() - t0);
  const allMs = ms((await within(all, 1_800_000, 'node 2 did not get every BlockedHost')) - t0);
  add({ id: 'large.agent.start.ready', name: `agent start to ready, ${at}`, value: readyMs, unit: 'ms', baseline: base, baselineId: 'agent.start.ready' });
  add({ id: 'large.agent.start.all', name: `agent start to all ${inForce} in its node set`, value: allMs, unit: 'ms', baseline: base, baselineId: 'agent.start.all' });
  await sleep(2000);
  add({ id: 'large.agent.rss', name: `agent RSS, ${at} (restarted)`, value: rssMiB(n2.agent!.child.pid!), unit: 'MiB', baseline: base, baselineId: 'agent.rss' });
  add({ id: 'large.etcd.size', name: `etcd database, ${at}`, value: etcdMiB(b), unit: 'MiB', baseline: base, baselineId: 'etcd.size' });
  progress(`large phase: detection to block with ${inForce} in force: ${plan.scaleSources} fresh sources`);
  const run = await latencyRun(b, p.next, plan.scaleSources);
  p.notes.largeRun = { missing: run.missing, requests: run.byRequest, slowest: run.stages.slowest };
  for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99']] as const)
    add({
      id: `large.latency.node3.${label}`,
      name: `probe to node 3's set with ${at}, ${label}`,
      value: quantile(run.node3, q),
      unit: 'ms',
      baseline: base,
      baselineId: `scale.latency.node3.${label}`,
      extra: { samples: run.node3.length, missing: run.missing },
    });
  add({ id: 'large.requests.per-detection', name: `operator API requests per detection with ${at}`, value: run.perDetection, unit: 'requests', baseline: base, baselineId: 'scale.requests.per-detection' });
  p.figures.push(...stageFigures('large.stage', ` with ${at}`, run, 'stage'));
  return { ...expected, inForce, latency: run };
}

/**
 * The mass import: `plan.import` manual BlockedHosts created at once (16 requests in
 * flight, as fast as the bench writes, as a blocklist import would) while fresh sources probe node 1 one at a time;
 * each probe timed to node 3's set, against the same with nothing being imported.
 */
async function importPhase(
  b: BenchCluster,
  plan: Plan,
  p: Phase & { offset: number; next: number; inForce: number; baseline: LatencyRun; baselineId: string },
): Promise<void> {
  const add = (f: Figure) => p.figures.push(f);
  progress(`mass import: ${plan.import} manual BlockedHosts at once (${p.inForce} in force) while a scan runs`);
  const bodies: object[] = [];
  for (let i = 0; i < plan.import; i++) {
    const address = bulkAddress(p.offset + i);
    bodies.push({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: blockedHostName(address) }, spec: { address, reason: 'bench: import', source: 'manual' } });
  }
  const t0 = performance.now();
  const importing = createBulk(b, bodies);
  importing.catch(() => undefined);
  const run = await latencyRun(b, p.next, 10_000, importing);
  const rate = await importing;
  const importMs = performance.now() - t0;
  p.notes.importRun = { missing: run.missing, requests: run.byRequest, importMs, probes: run.node3.length + run.missing, slowest: run.stages.slowest };
  add({ id: 'import.rate', name: `mass import: manual BlockedHosts created (16 in flight)`, value: rate, unit: 'objects/s', extra: { objects: plan.import, ms: importMs } });
  for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99'], [1, 'max']] as const)
    add({
      id: `import.latency.node3.${label}`,
      name: `probe to node 3's set during the import, ${label}`,
      value: quantile(run.node3, q),
      unit: 'ms',
      ...(label === 'max' ? {} : { baseline: 'no import', baselineId: `${p.baselineId}.${label}` }),
      extra: { samples: run.node3.length, missing: run.missing, over1s: run.node3.filter((v) => v > 1000).length },
    });
  p.figures.push(...stageFigures('import.stage', ' during the import', run, 'stage'));
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        sources: { type: 'string' },
        'blocked-hosts': { type: 'string' },
        'scale-sources': { type: 'string' },
        trains: { type: 'string' },
        large: { type: 'string' },
        import: { type: 'string' },
        out: { type: 'string', default: 'bench-results/cluster.json' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const defaults: Plan = values.quick
    ? { sources: 30, blockedHosts: 1000, scaleSources: 10, large: 0, import: 1000, trains: 5 }
    : { sources: 200, blockedHosts: 10_000, scaleSources: 50, large: 0, import: 10_000, trains: 20 };
  const plan = { ...defaults };
  const bulkMax = Math.floor(BULK_LIMIT / 1.02) - 100_000;
  for (const [flag, key, min, max] of [
    ['sources', 'sources', 1, 50_000],
    ['blocked-hosts', 'blockedHosts', 1, bulkMax],
    ['scale-sources', 'scaleSources', 1, 10_000],
    ['large', 'large', 0, bulkMax],
    ['import', 'import', 0, 100_000],
    ['trains', 'trains', 0, 2_500],
  ] as const) {
    const text = values[flag];
    if (text === undefined) continue;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      process.stderr.write(`--${flag} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}\n${USAGE}\n`);
      return 2;
    }
    plan[key] = n;
  }
  if (plan.sources + 2 * plan.scaleSources + 10_000 > 45_000) {
    process.stderr.write('--sources and twice --scale-sources together must stay under 35,000 (the source range, with the import scan\'s 10,000 and the fast-path trains\' 5,000 kept)\n');
    return 2;
  }
  if (plan.large && plan.large <= plan.blockedHosts) {
    process.stderr.write(`--large (${plan.large}) must be more than --blocked-hosts (${plan.blockedHosts})\n`);
    return 2;
  }
  const missing = missingPrerequisites();
  if (missing.length) {
    process.stderr.write(`bench:cluster needs ${missing.join(', ')} (network namespaces, nftables, a control plane built with go)\n`);
    return 2;
  }
  const out = resolve(values.out!);
  progress(`${JSON.stringify(plan)}; JSON to ${out}`);
  const started = performance.now();
  const b = await BenchCluster.create();
  // Interrupted: the namespaces and the control plane still go.
  const interrupted = () => void b.destroy().finally(() => process.exit(130));
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  let result;
  try {
    result = await measure(b, plan);
  } finally {
    await b.destroy();
  }
  const report = {
    benchmark: 'cluster',
    timestamp: new Date().toISOString(),
    quick: values.quick === true,
    elapsedMs: performance.now() - started,
    machine: { node: process.version, cpuModel: cpus()[0]?.model, cores: cpus().length },
    settings: plan,
    notes: result.notes,
    figures: result.figures,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    'kube-portsentry cluster benchmark: real API server, operator, three agents in node namespaces\n' +
      'ratios compare with a baseline measured in this run\n\n' +
      `${formatTable(result.figures)}\n\n` +
      `requests per detection by verb, resource and code: ${JSON.stringify(result.notes.smallRun)}\n` +
      `stages: ${STAGES.map((stage) => `${stage}: ${STAGE_MEANING[stage]}`).join('; ')}\n` +
      `${(report.elapsedMs / 1000).toFixed(1)} s; JSON written to ${out}\n`,
  );
  return 0;
}

// Exit at once: keep-alive connections of fetch and of the test helpers' loopback
// forwarders would otherwise hold the process until their peers time them out.
process.exit(await main());
