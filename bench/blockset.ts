// Block-set scale (bench/detector.ts --part blockset), nftables and iptables+ipset, in the
// target namespace:
// one address more with the set empty and with `--entries` in it; the rebuild after an
// agent restart from an empty table and from a kept one, batched and one round trip per
// address (bench/blockset-child.ts); then the CPU per packet of UNBLOCKED traffic (an
// hping3 flood from the scanner, an address not in the set, to a closed port) with the
// set full against the same sets emptied: sender and ksoftirqd, as bench/fastpath.ts
// counts them, which carry the target's receive path and so the set lookup.
import { fileURLToPath } from 'node:url';
import { IPSET_PREFIX } from '../src/respond/firewall/iptables.js';
import type { TestNet } from '../support/netns.js';
import { floodCpu } from './fastpath.js';
import { progress, type Figure } from './harness.js';

const CHILD = fileURLToPath(new URL('./blockset-child.js', import.meta.url));
const TABLE = 'kps_bench_blockset';

interface Phases {
  setup: number;
  claims: number;
  reconcile: number;
  added: number;
}

interface ChildResult {
  addEmpty: number[];
  addFull: number[];
  'fromEmpty.single': Phases;
  'fromEmpty.batched': Phases;
  'kept.single': Phases;
  'kept.batched': Phases;
  steadyReconcile: number;
  listed: number;
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

export type Backend = 'nftables' | 'iptables';

export async function blockSetFigures(net: TestNet, seconds: number, entries: number, adds: number, backends: Backend[]): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const backend of backends) figures.push(...(await backendFigures(net, seconds, entries, adds, backend)));
  return figures;
}

async function backendFigures(net: TestNet, seconds: number, entries: number, adds: number, backend: Backend): Promise<Figure[]> {
  const child = (...args: string[]) =>
    net.exec(net.target, [process.execPath, CHILD, '--backend', backend, '--table', TABLE, ...args], { timeoutMs: 1_800_000 });
  const figures: Figure[] = [];
  try {
    progress(`block set (${backend}): ${adds} additions on an empty set, rebuilds of ${entries.toLocaleString('en-US')}, ${adds} additions on the full set`);
    const { stdout } = await child('--entries', String(entries), '--adds', String(adds));
    const r = JSON.parse(stdout) as ChildResult;
    const size = entries.toLocaleString('en-US');
    const empty = [...r.addEmpty].sort((a, b) => a - b);
    const full = [...r.addFull].sort((a, b) => a - b);
    for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
      const id = `blockset.${backend}.add.${label}`;
      figures.push(
        { id: `${id}.empty`, name: `${backend}: one address more (a BlockSet claim), empty set, ${label}`, value: quantile(empty, q), unit: 'ms', extra: { samples: empty.length } },
        {
          id: `${id}.full`,
          name: `${backend}: one address more, ${size} in the set, ${label}`,
          value: quantile(full, q),
          unit: 'ms',
          baseline: 'empty set',
          baselineId: `${id}.empty`,
          ratio: quantile(full, q) / quantile(empty, q),
          extra: { samples: full.length },
        },
      );
    }
    const total = (p: Phases) => (p.setup + p.claims + p.reconcile) / 1000;
    const extra = (p: Phases) => ({ setupMs: p.setup, claimsMs: p.claims, reconcileMs: p.reconcile, addedByReconcile: p.added });
    for (const from of ['fromEmpty', 'kept'] as const) {
      const what = from === 'fromEmpty' ? 'from an empty table' : 'from a kept table holding them';
      const one = r[`${from}.single`];
      const batched = r[`${from}.batched`];
      const id = `blockset.${backend}.rebuild.${from}`;
      figures.push(
        { id: `${id}.single`, name: `${backend}: restart rebuild of ${size}, ${what}, one round trip per address`, value: total(one), unit: 's', extra: extra(one) },
        {
          id: `${id}.batched`,
          name: `${backend}: restart rebuild of ${size}, ${what}, batched (1,000 per batch)`,
          value: total(batched),
          unit: 's',
          baseline: 'one per address',
          baselineId: `${id}.single`,
          ratio: total(batched) / total(one),
          extra: extra(batched),
        },
      );
    }
    figures.push({ id: `blockset.${backend}.reconcile.steady`, name: `${backend}: periodic reconcile, ${size} in the set, nothing to change`, value: r.steadyReconcile, unit: 'ms' });

    // The table is full: unblocked traffic through it, then through the same sets emptied.
    progress(`block set (${backend}): ${seconds} s hping3 --flood from an unblocked address, ${size} in the set`);
    const withFull = await floodCpu(net, 2, seconds, null);
    const flush = backend === 'nftables' ? ['nft', 'flush', 'set', 'inet', TABLE] : ['ipset', 'flush'];
    for (const set of backend === 'nftables' ? ['blocked4', 'blocked6'] : [`${IPSET_PREFIX}-v4`, `${IPSET_PREFIX}-v6`]) await net.exec(net.target, [...flush, set]);
    progress(`block set (${backend}): ${seconds} s hping3 --flood from an unblocked address, sets empty`);
    const withEmpty = await floodCpu(net, 2, seconds, null);
    figures.push(
      {
        id: `blockset.${backend}.unblocked.empty`,
        name: `${backend}: unblocked flood, CPU per packet (sender + ksoftirqd), sets empty`,
        value: withEmpty.totalUs,
        unit: 'us',
        extra: { sent: withEmpty.sent },
      },
      {
        id: `blockset.${backend}.unblocked.full`,
        name: `${backend}: unblocked flood, CPU per packet (sender + ksoftirqd), ${size} in the set`,
        value: withFull.totalUs,
        unit: 'us',
        baseline: 'sets empty',
        baselineId: `blockset.${backend}.unblocked.empty`,
        ratio: withFull.totalUs / withEmpty.totalUs,
        extra: { sent: withFull.sent },
      },
    );
  } finally {
    await child('--teardown').catch(() => undefined);
  }
  return figures;
}
