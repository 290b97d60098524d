// The cluster benchmark's fast-path part (bench/cluster.ts): the kernel fast path in the
// agents against their raw-socket path, in the same run, under the bench policy (one
// node's detection blocks everywhere). Each train comes from a fresh source
// (bench/cluster-train.ts): a SYN to node 1's tripwire port and, queued with it, `burst`
// SYNs back to back to a port of node 1 that is no tripwire, then one SYN a millisecond to
// that port on nodes 2 and 3 for `ms` milliseconds. Each node counts, in a table of the bench's own, the
// train's SYNs that reached prerouting (priority -400) and those still there after the
// agent's rules (input, priority 200: after the trap): what got through on node 1 before its block, and on nodes 2 and 3
// before the BlockedHost reached them.
import { fileURLToPath } from 'node:url';
import type { TestNode } from '../support/cluster.js';
import { DEFAULT_INSTANCE, firewallNames } from '../src/respond/firewall/owner.js';
import { POLICY, probeSource, SOURCE_RANGE, TRIPWIRE_PORT, type BenchCluster } from './cluster-setup.js';
import { progress, type Figure } from './harness.js';

const TRAIN = fileURLToPath(new URL('./cluster-train.js', import.meta.url));
const NFT_TABLE = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE }).table;
/** The bench's counting table on each node. */
const COUNT_TABLE = 'kps_bench_count';
/** The train's port that is no tripwire (nothing listens: the counters are before any socket). */
const OTHER_PORT = 8080;
/** Where the fast-path trains' sources start in the probe range, past the other parts'. */
const FIRST_SOURCE = 45_000;

export interface TrainPlan {
  trains: number;
  burst: number;
  ms: number;
}

interface Counts {
  /** SYNs to the other port seen at prerouting, and still there after the agent's rules. */
  seen: number;
  passed: number;
  /** The tripwire SYN still there after the agent's rules (answered). */
  probePassed: number;
}

interface PathRun {
  node1: number[];
  node2: number[];
  node3: number[];
  probesAnswered: number;
  /** Trains whose paced part ended before the source was in node 2's or 3's set. */
  late: number;
  /** Per train: SYNs of the burst node 1 saw, and how long the paced part took (ms). */
  burstSeen: number[];
  burstMs: number[];
  pacedMs: number[];
}

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));
const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function setUpCounters(b: BenchCluster): Promise<void> {
  const t = `inet ${COUNT_TABLE}`;
  const rules = (chain: string) => [
    `add rule ${t} ${chain} ip saddr ${SOURCE_RANGE} tcp dport ${OTHER_PORT} counter`,
    `add rule ${t} ${chain} ip saddr ${SOURCE_RANGE} tcp dport ${TRIPWIRE_PORT} counter`,
  ];
  const script = [
    `add table ${t}`,
    `add chain ${t} seen { type filter hook prerouting priority -400; policy accept; }`,
    `add chain ${t} passed { type filter hook input priority 200; policy accept; }`,
    ...rules('seen'),
    ...rules('passed'),
    '',
  ].join('\n');
  for (const node of b.nodes) await b.cluster.exec(node.ns, ['sh', '-c', `nft -f - <<'EOF'\n${script}EOF`]);
}

async function counts(b: BenchCluster, node: TestNode): Promise<Counts> {
  const { stdout } = await b.cluster.exec(node.ns, ['nft', 'list', 'table', 'inet', COUNT_TABLE]);
  const [, seenPart = '', passedPart = ''] = stdout.split(/chain (?:seen|passed) \{/);
  const of = (text: string, port: number) => Number(new RegExp(`tcp dport ${port} counter packets (\\d+)`).exec(text)?.[1] ?? NaN);
  return { seen: of(seenPart, OTHER_PORT), passed: of(passedPart, OTHER_PORT), probePassed: of(passedPart, TRIPWIRE_PORT) };
}

/** The bench policy with the fast path on or off, in force on every node. */
async function usePolicy(b: BenchCluster, fast: boolean): Promise<void> {
  await b.cp.kubectl(['apply', '-f', '-'], { input: POLICY.replace(/^ {4}tcp: block$/m, `    tcp: block\n    kernelFastPath: ${fast}`) });
  for (const node of b.nodes)
    for (const deadline = Date.now() + 30_000; ; await sleep(200)) {
      const chain = await b.cluster.exec(node.ns, ['nft', 'list', 'chain', 'inet', NFT_TABLE, 'trap_hook']).then((r) => r.stdout, () => '');
      const ports = await b.cluster.exec(node.ns, ['nft', 'list', 'set', 'inet', NFT_TABLE, 'tripwire_tcp']).then((r) => r.stdout, () => '');
      if (fast ? chain.includes('jump trap') && ports.includes(`elements = { ${TRIPWIRE_PORT} }`) : !chain.includes('jump trap')) break;
      if (Date.now() > deadline) throw new Error(`${node.name}: the fast path not ${fast ? 'on' : 'off'} within 30 s of the policy edit`);
    }
  // The raw path's sockets open once the edit is in force: give its detector a moment.
  await sleep(1000);
}

async function runTrains(b: BenchCluster, fast: boolean, plan: TrainPlan, first: number): Promise<PathRun> {
  const [n1, n2, n3] = b.nodes as [TestNode, TestNode, TestNode];
  const run: PathRun = { node1: [], node2: [], node3: [], probesAnswered: 0, late: 0, burstSeen: [], burstMs: [], pacedMs: [] };
  await usePolicy(b, fast);
  for (let i = 0; i < plan.trains; i++) {
    const source = probeSource(first + i);
    const before = await Promise.all([n1, n2, n3].map((n) => counts(b, n)));
    const out = await b.cluster.exec(b.cluster.scanner, [
      process.execPath, TRAIN, '--source', source, '--targets', [n1, n2, n3].map((n) => n.v4).join(','),
      '--tripwire', String(TRIPWIRE_PORT), '--port', String(OTHER_PORT), '--burst', String(plan.burst), '--ms', String(plan.ms),
    ]);
    const sent = JSON.parse(out.stdout.trim()) as { burstMs: number; pacedMs: number };
    run.burstMs.push(Math.round(sent.burstMs * 10) / 10);
    run.pacedMs.push(Math.round(sent.pacedMs));
    await sleep(200);
    const after = await Promise.all([n1, n2, n3].map((n) => counts(b, n)));
    const through = (k: number) => after[k]!.passed - before[k]!.passed;
    run.node1.push(through(0));
    run.burstSeen.push(after[0]!.seen - before[0]!.seen);
    run.node2.push(through(1));
    run.node3.push(through(2));
    run.probesAnswered += after[0]!.probePassed - before[0]!.probePassed;
    if (through(1) >= after[1]!.seen - before[1]!.seen || through(2) >= after[2]!.seen - before[2]!.seen) run.late++;
  }
  for (const list of [run.node1, run.node2, run.node3]) list.sort((a, c) => a - c);
  return run;
}

export async function fastPathPart(b: BenchCluster, plan: TrainPlan): Promise<{ figures: Figure[]; notes: Record<string, unknown> }> {
  await setUpCounters(b);
  progress(`fast path: ${plan.trains} trains with the raw-socket path (baseline), then ${plan.trains} with the kernel fast path`);
  const raw = await runTrains(b, false, plan, FIRST_SOURCE);
  const fast = await runTrains(b, true, plan, FIRST_SOURCE + plan.trains);
  // The bench's other parts run without it.
  await usePolicy(b, false);
  const figures: Figure[] = [];
  const samples = { trains: plan.trains, burst: plan.burst, pacedMs: plan.ms };
  for (const [key, label, node] of [['node1', 'node 1 (detecting), of the burst', 'node1'], ['node2', 'node 2, of the paced SYNs', 'node2'], ['node3', 'node 3, of the paced SYNs', 'node3']] as const)
    for (const [q, ql] of [[0.5, 'p50'], [0.99, 'p99'], [1, 'max']] as const) {
      const base = quantile(raw[node], q);
      const value = quantile(fast[node], q);
      figures.push({ id: `fastpath.raw.${key}.${ql}`, name: `raw path: SYNs through on ${label}, ${ql}`, value: base, unit: 'packets', extra: samples });
      figures.push({
        id: `fastpath.${key}.${ql}`,
        name: `fast path: SYNs through on ${label}, ${ql}`,
        value,
        unit: 'packets',
        baseline: 'raw path',
        baselineId: `fastpath.raw.${key}.${ql}`,
        ratio: value / base,
        extra: samples,
      });
    }
  figures.push({ id: 'fastpath.raw.probes-answered', name: 'raw path: tripwire SYNs that got through (answered)', value: raw.probesAnswered, unit: 'packets', extra: samples });
  figures.push({
    id: 'fastpath.probes-answered',
    name: 'fast path: tripwire SYNs that got through (answered)',
    value: fast.probesAnswered,
    unit: 'packets',
    baseline: 'raw path',
    baselineId: 'fastpath.raw.probes-answered',
    ratio: fast.probesAnswered / raw.probesAnswered,
    extra: samples,
  });
  return {
    figures,
    notes: {
      fastPath: {
        raw: { late: raw.late, through: { node1: raw.node1, node2: raw.node2, node3: raw.node3 }, burstSeen: raw.burstSeen, burstMs: raw.burstMs, pacedMs: raw.pacedMs },
        fast: { late: fast.late, through: { node1: fast.node1, node2: fast.node2, node3: fast.node3 }, burstSeen: fast.burstSeen, burstMs: fast.burstMs, pacedMs: fast.pacedMs },
      },
    },
  };
}
