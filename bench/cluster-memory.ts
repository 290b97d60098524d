// The cluster bench's memory part (issue 17, item 3): one node's agent restarted on an empty
// node set with each of several process settings, and its RSS read once it holds every
// BlockedHost in force and has settled. The baseline, in the same run, is the agent with
// client-node's full client loaded as well (what the agent loaded before it talked to the API
// through api-connection.ts); the V8 and malloc settings are measured one at a time, and the
// chart's agent settings (agent.runtimeEnv) together. (--lite-mode is not allowed in NODE_OPTIONS,
// and would slow the packet path: not measured here.)
import type { TestNode } from '../support/cluster.js';
import { DEFAULT_INSTANCE, firewallNames } from '../src/respond/firewall/owner.js';
import { agentRuntimeEnv } from './agent-runtime.js';
import { AGENT_METRICS, type BenchCluster, metricValue, rssMiB } from './cluster-setup.js';
import { progress, type Figure } from './harness.js';

const NFT_TABLE = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE }).table;
/** After the last BlockedHost arrives: the list's garbage collected, the process idle. */
const SETTLE_MS = 5000;


interface Variant {
  id: string;
  name: string;
  env: Record<string, string>;
}

function variants(): Variant[] {
  const chart = agentRuntimeEnv();
  const fullClient = `--import=${import.meta.resolve('@kubernetes/client-node')}`;
  return [
    { id: 'full-client', name: "with client-node's full client loaded (as before)", env: { NODE_OPTIONS: fullClient } },
    { id: 'plain', name: 'no runtime settings', env: {} },
    { id: 'semi-space-1', name: 'NODE_OPTIONS=--max-semi-space-size=1', env: { NODE_OPTIONS: '--max-semi-space-size=1' } },
    { id: 'malloc-mmap', name: 'MALLOC_MMAP_THRESHOLD_=131072', env: { MALLOC_MMAP_THRESHOLD_: '131072' } },
    { id: 'chart', name: `as the chart runs it (${Object.entries(chart).map(([k, v]) => `${k}=${v}`).join(' ')})`, env: chart },
  ];
}

/** Starts the node's agent with `env` added to the bench's environment (spawn inherits it). */
async function startWith(b: BenchCluster, node: TestNode, env: Record<string, string>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    await b.startAgent(node);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Where the idle agent's memory is, from its own process metrics (prom-client's defaults), in MiB. */
function heapOf(metrics: string): Record<string, number> {
  const mib = (series: string) => (metricValue(metrics, series) ?? NaN) / 2 ** 20;
  return {
    heapTotal: mib('nodejs_heap_size_total_bytes'),
    heapUsed: mib('nodejs_heap_size_used_bytes'),
    newSpace: mib('nodejs_heap_space_size_total_bytes{space="new"}'),
    oldSpace: mib('nodejs_heap_space_size_total_bytes{space="old"}'),
    codeSpace: mib('nodejs_heap_space_size_total_bytes{space="code"}'),
    external: mib('nodejs_external_memory_bytes'),
  };
}

/**
 * Restarts `node`'s agent once per variant, each on an empty node set, and reads its RSS once
 * it holds all `inForce` BlockedHosts (`isBulk` picks them out of the set watcher's stream).
 * Leaves the node with an agent as the bench started it.
 */
export async function agentMemory(b: BenchCluster, node: TestNode, inForce: number, isBulk: (address: string) => boolean): Promise<Figure[]> {
  const figures: Figure[] = [];
  let baseline = NaN;
  for (const v of variants()) {
    progress(`agent memory on ${node.name}: ${v.name}`);
    await node.agent!.stop();
    for (const set of ['blocked4', 'blocked6']) await b.cluster.exec(node.ns, ['nft', 'flush', 'set', 'inet', NFT_TABLE, set]);
    const all = b.watchers.get(node.name)!.count(inForce, isBulk);
    await startWith(b, node, v.env);
    await all;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rss = rssMiB(node.agent!.child.pid!);
    const heap = heapOf(await b.cluster.agentMetrics(node, AGENT_METRICS));
    progress(`  ${rss.toFixed(1)} MiB; V8 heap (MiB): ${Object.entries(heap).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
    if (v.id === 'full-client') baseline = rss;
    figures.push({
      id: `agent.memory.${v.id}`,
      name: `idle agent RSS, ${inForce} BlockedHosts, ${v.name}`,
      value: rss,
      unit: 'MiB',
      ...(v.id === 'full-client' ? {} : { baseline: 'full client', baselineId: 'agent.memory.full-client', ratio: rss / baseline }),
      extra: { blockedHosts: inForce, ...v.env, ...Object.fromEntries(Object.entries(heap).map(([k, v]) => [`${k}MiB`, v])) },
    });
  }
  await node.agent!.stop();
  await b.startAgent(node);
  return figures;
}
