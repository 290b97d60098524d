// The operator's cluster-wide correlator under a forged sweep: `--sources` (100,000) forged
// sources, each probing 15 tripwire ports on each of 3 nodes, fed as the agents send them
// (reports of 1,000 sources per node). Reports the heap after each fifth of the sources
// (after a full GC) and the time to take in one report, early and late in the sweep, so
// growth shows as a slope. Then one source that touches every TCP port on the 3 nodes: the
// time to take in a one-probe report of it once it has touched them all.
// `npm run bench:correlator -- [--sources N] [--out FILE]` (node runs with --expose-gc).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Correlator } from '../src/cluster/correlator.js';
import { formatTable, type Figure } from './harness.js';
import { sourceReport } from '../support/reports.js';

const { values } = parseArgs({ options: { sources: { type: 'string', default: '100000' }, out: { type: 'string' } } });
const SOURCES = Number(values.sources);
const NODES = ['node-1', 'node-2', 'node-3'];
const PORTS = 15;
const PER_REPORT = 1000;
const MAX_TRACKED = 100_000; // the operator's default --max-tracked-sources
const trigger = { count: 255, windowMs: 3_600_000 }; // never passed: every source stays tracked

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const heapMiB = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

const figures: Figure[] = [];
const c = new Correlator(MAX_TRACKED);
const tripwire = Array.from({ length: PORTS }, (_, i) => 1 + i * 7);
const heapBase = heapMiB();
const reportMs: number[] = [];
const heap: { sources: number; mib: number }[] = [];
let now = 1_700_000_000_000;
for (let first = 0; first < SOURCES; first += PER_REPORT) {
  const batch = Array.from({ length: Math.min(PER_REPORT, SOURCES - first) }, (_, i) => sourceReport(address(first + i), tripwire, now));
  for (const node of NODES) {
    const t0 = process.hrtime.bigint();
    for (const r of batch) c.add(node, 'default', r, trigger, now);
    reportMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  now += 10;
  const done = first + batch.length;
  if (done % (SOURCES / 5) === 0) heap.push({ sources: done, mib: heapMiB() - heapBase });
}
const fifth = Math.max(1, Math.floor(reportMs.length / 5));
const early = reportMs.slice(0, fifth);
const late = reportMs.slice(-fifth);
for (const h of heap)
  figures.push({ id: `heap-${h.sources}`, name: `correlator heap after ${h.sources} forged sources x ${PORTS} ports x 3 nodes`, value: Math.round(h.mib * 10) / 10, unit: 'MiB' });
figures.push(
  { id: 'report-early-p50', name: `one report (${PER_REPORT} sources), first fifth of the sweep, p50`, value: percentile(early, 50), unit: 'ms' },
  { id: 'report-early-p99', name: `one report (${PER_REPORT} sources), first fifth of the sweep, p99`, value: percentile(early, 99), unit: 'ms' },
  { id: 'report-late-p50', name: `one report (${PER_REPORT} sources), last fifth of the sweep, p50`, value: percentile(late, 50), unit: 'ms' },
  { id: 'report-late-p99', name: `one report (${PER_REPORT} sources), last fifth of the sweep, p99`, value: percentile(late, 99), unit: 'ms' },
);

// One source over every TCP port on each node, then one-probe reports of it.
const heapBeforeWide = heapMiB();
const wide = new Correlator(MAX_TRACKED);
const all = Array.from({ length: 65535 }, (_, i) => i + 1);
for (const node of NODES) for (let i = 0; i < all.length; i += 256) wide.add(node, 'default', sourceReport('192.0.2.1', all.slice(i, i + 256), now), trigger, now);
const one: number[] = [];
for (let i = 0; i < 200; i++) {
  const t0 = process.hrtime.bigint();
  wide.add(NODES[i % 3]!, 'default', sourceReport('192.0.2.1', [1 + (i % 1000)], now + i), trigger, now + i);
  one.push(Number(process.hrtime.bigint() - t0) / 1e3);
}
figures.push({ id: 'wide-one-probe-p50', name: 'one-probe report of a source that touched every TCP port on 3 nodes, p50', value: percentile(one, 50), unit: 'us' });
figures.push({ id: 'wide-heap', name: 'that source alone, heap', value: Math.round((heapMiB() - heapBeforeWide) * 10) / 10, unit: 'MiB', extra: { tracked: c.size } });

process.stdout.write(formatTable(figures));
if (values.out) writeFileSync(values.out, JSON.stringify(figures, null, 2));
