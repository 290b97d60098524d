// Source tracker figures: the compact tracker (src/engine/tracker.ts) against the one it
// replaced (bench/old-tracker.ts), both measured in this run: state updates per second,
// bytes per tracked source at the cap, and the RSS of a child process holding a full
// engine, as the agent would, against the same child with an empty one.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Probe } from '../src/engine/probe.js';
import { AddressKey } from '../src/engine/address-key.js';
import { SourceTracker } from '../src/engine/tracker.js';
import { agentRuntimeEnv } from './agent-runtime.js';
import { measure, progress, type Figure, type MeasureOptions } from './harness.js';
import { OldSourceTracker } from './old-tracker.js';
import { addressAt, addressOf } from '../src/net/address.js';

const T0 = Date.UTC(2025, 0, 1);
const WINDOW_MS = 3_600_000;

export type Mix = 'v4' | 'mixed';

/** Distinct canonical addresses: IPv4 in 10.0.0.0/8, or every other one IPv6 in 2001:db8::/32. */
export function mixedAddress(i: number, mix: Mix): string {
  if (mix === 'v4' || i % 2 === 0) return `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  // No two consecutive zero groups (j > 0), so this text is already canonical.
  const j = i + 1;
  return `2001:db8:${((j * 7919) & 0xffff).toString(16)}:${(j >>> 16).toString(16)}:${(j & 0xffff).toString(16)}:5ca7:${((j * 31) & 0xffff).toString(16)}:1`;
}

function probe(source: string, port: number): Probe {
  return { time: T0, protocol: 'tcp', mode: 'stealth', source: addressOf(source)!, port, type: 'syn', flags: 'S', verified: false };
}

export interface TrackerSizes {
  oneSourceProbes: number;
  /** Distinct sources, and the cap of the run where they all fit. */
  sources: number;
  /** The cap of the run where every probe is a new source evicting the oldest. */
  evictingCap: number;
  /** Probes per timed run of the many-sources streams. */
  chunk: number;
}

export interface TrackerBenchResult {
  figures: Figure[];
  capExceeded: boolean;
  warnings: string[];
}

interface Tracker {
  readonly size: number;
  record(p: Probe): unknown;
}

/** The next `chunk` probes of `probes`, read as an endless stream. */
function stream(tracker: Tracker, probes: readonly Probe[], chunk: number, startAt: number): () => number {
  let cursor = startAt % probes.length;
  return () => {
    for (let left = chunk; left > 0; left--) {
      tracker.record(probes[cursor]!);
      if (++cursor === probes.length) cursor = 0;
    }
    return chunk;
  };
}

function ratioFigures(id: string, name: string, compact: { nsPerOp: number; samplesNsPerOp: number[] }, old: { nsPerOp: number; samplesNsPerOp: number[] }, extra: Figure['extra']): Figure[] {
  return [
    {
      id: `${id}.compact.probesPerSec`,
      name: `record ${name}`,
      value: 1e9 / compact.nsPerOp,
      unit: 'probes/s',
      baseline: 'old tracker',
      baselineId: `${id}.old.probesPerSec`,
      ratio: old.nsPerOp / compact.nsPerOp,
      samples: compact.samplesNsPerOp.map((ns) => 1e9 / ns),
      extra,
    },
    { id: `${id}.old.probesPerSec`, name: `  baseline: old tracker, same probes`, value: 1e9 / old.nsPerOp, unit: 'probes/s', samples: old.samplesNsPerOp.map((ns) => 1e9 / ns), extra },
  ];
}

export function trackerThroughput(sizes: TrackerSizes, opts: MeasureOptions): TrackerBenchResult {
  const result: TrackerBenchResult = { figures: [], capExceeded: false, warnings: [] };
  const scenario = (key: string, label: string, probes: Probe[], cap: number, prefill: number, chunk: number): void => {
    progress(`record: ${label}`);
    const results = [];
    for (const make of [() => new SourceTracker(cap, WINDOW_MS), () => new OldSourceTracker(cap, WINDOW_MS)]) {
      let tracker: Tracker | undefined = make();
      for (let i = 0; i < prefill; i++) tracker.record(probes[i]!);
      const run = stream(tracker, probes, chunk, prefill);
      let maxTracked = 0;
      results.push(
        measure(() => {
          const n = run();
          maxTracked = Math.max(maxTracked, tracker!.size);
          return n;
        }, opts),
      );
      if (maxTracked > cap) {
        result.capExceeded = true;
        result.warnings.push(`CAP EXCEEDED: record ${label}: ${maxTracked} tracked, cap ${cap}`);
      }
      tracker = undefined; // the next one starts without this one's heap
    }
    result.figures.push(...ratioFigures(`record.${key}`, label, results[0]!, results[1]!, { probes: probes.length, cap, prefill, chunk }));
  };

  {
    const probes: Probe[] = [];
    for (let i = 0; i < sizes.oneSourceProbes; i++) probes.push(probe('198.51.100.7', (i % 65535) + 1));
    scenario('oneSource', '(a) one source, many ports', probes, sizes.sources, 0, probes.length);
  }
  const n = sizes.sources.toLocaleString('en-US');
  for (const mix of ['v4', 'mixed'] as const) {
    const probes: Probe[] = [];
    for (let i = 0; i < sizes.sources; i++) probes.push(probe(mixedAddress(i, mix), 22 + (i % 1000)));
    // Every source tracked: each probe finds its source among all the others and moves it to the front.
    scenario(`sources.${mix}`, `(b) ${n} sources (${mix}), all tracked`, probes, sizes.sources, sizes.sources, sizes.chunk);
    if (mix === 'v4') {
      // Beyond the cap: every probe is a new source and evicts the least recently seen.
      const cap = sizes.evictingCap;
      scenario('evicting', `(c) ${n} sources, cap ${cap.toLocaleString('en-US')}`, probes, cap, cap, sizes.chunk);
    }
    // What the address costs from the packet on (text and bytes made once by the reader,
    // words loaded by the tracker), against the string Map lookup the old tracker made.
    const key = new AddressKey();
    const map = new Map<string, number>(probes.map((p, i) => [p.source.text, i]));
    const packed = probes.map((p) => p.source.bytes);
    const chunk = sizes.chunk;
    let cursor = 0;
    const parse = measure(() => {
      for (let k = 0; k < chunk; k++) {
        const bytes = packed[cursor]!;
        key.load(addressAt(bytes, 0, bytes.length === 4 ? 4 : 6).bytes);
        if (++cursor === probes.length) cursor = 0;
      }
      return chunk;
    }, opts);
    cursor = 0;
    let found = 0;
    const lookup = measure(() => {
      for (let k = 0; k < chunk; k++) {
        if (map.get(probes[cursor]!.source.text) !== undefined) found++;
        if (++cursor === probes.length) cursor = 0;
      }
      return chunk;
    }, opts);
    const id = `parse.${mix}`;
    const extra = { sources: probes.length, found };
    result.figures.push(
      { id: `${id}.nsPerAddress`, name: `address from packet bytes to text and words (${mix})`, value: parse.nsPerOp, unit: 'ns/probe', baseline: 'Map.get', baselineId: `${id}.mapGet.nsPerOp`, ratio: parse.nsPerOp / lookup.nsPerOp, samples: parse.samplesNsPerOp, extra },
      { id: `${id}.mapGet.nsPerOp`, name: `  baseline: Map.get of the same text among ${n}`, value: lookup.nsPerOp, unit: 'ns/probe', samples: lookup.samplesNsPerOp, extra },
    );
  }
  return result;
}

function collectGarbage(gc: () => void): void {
  // Twice: the first pass may only promote what a second one frees.
  gc();
  gc();
}

function footprint(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external; // external includes the array buffers
}

/**
 * Bytes per tracked source at the cap: heap, external and array-buffer memory after filling
 * a tracker with `cap` distinct sources (one probe each, addresses made on the fly so the old
 * tracker's strings count), minus before; then a tenth more sources, which must be evicted.
 */
export function trackerMemory(caps: readonly number[], gc: () => void): TrackerBenchResult {
  const result: TrackerBenchResult = { figures: [], capExceeded: false, warnings: [] };
  for (const cap of caps) {
    for (const mix of ['v4', 'mixed'] as const) {
      const bytes: Record<'compact' | 'old', number> = { compact: 0, old: 0 };
      for (const impl of ['compact', 'old'] as const) {
        progress(`memory: ${impl} tracker, ${cap.toLocaleString('en-US')} ${mix} sources`);
        collectGarbage(gc);
        const before = footprint();
        let tracker: Tracker | undefined = impl === 'compact' ? new SourceTracker(cap, WINDOW_MS) : new OldSourceTracker(cap, WINDOW_MS);
        let maxTracked = 0;
        for (let i = 0; i < cap; i++) {
          tracker.record(probe(mixedAddress(i, mix), 22 + (i % 1000)));
          if (tracker.size > maxTracked) maxTracked = tracker.size;
        }
        collectGarbage(gc);
        bytes[impl] = (footprint() - before) / cap;
        if (tracker.size !== cap) result.warnings.push(`memory fill: ${tracker.size} tracked after ${cap} sources`);
        for (let i = cap; i < cap + Math.ceil(cap / 10); i++) {
          tracker.record(probe(mixedAddress(i, mix), 22 + (i % 1000)));
          if (tracker.size > maxTracked) maxTracked = tracker.size;
        }
        if (maxTracked > cap) {
          result.capExceeded = true;
          result.warnings.push(`CAP EXCEEDED: memory fill (${impl}, ${mix}): ${maxTracked} tracked, cap ${cap}`);
        }
        tracker = undefined;
        void tracker;
      }
      const c = cap.toLocaleString('en-US');
      const id = `memory.cap${cap}.${mix}`;
      result.figures.push(
        { id: `${id}.compact.bytesPerSource`, name: `memory per tracked source, ${c} ${mix}`, value: bytes.compact, unit: 'B/source', baseline: 'old tracker', baselineId: `${id}.old.bytesPerSource`, ratio: bytes.compact / bytes.old, extra: { cap, mix } },
        { id: `${id}.old.bytesPerSource`, name: `  baseline: old tracker`, value: bytes.old, unit: 'B/source', extra: { cap, mix } },
      );
    }
  }
  return result;
}

export interface ChildReport {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  tracked: number;
  evicted: number;
}

const CHILD = fileURLToPath(new URL('./engine-child.js', import.meta.url));

function child(args: string[], env: Record<string, string> = {}): ChildReport {
  const run = spawnSync(process.execPath, ['--expose-gc', CHILD, ...args], { encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, ...env } });
  if (run.error) throw new Error(`engine child ${args.join(' ')}: ${run.error.message}`);
  if (run.status !== 0) throw new Error(`engine child ${args.join(' ')} exited with ${run.status}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout) as ChildReport;
}

/** RSS of a child holding a full engine (compact: IPv4 and mixed; the old tracker: IPv4) against an empty one. */
export function engineRss(cap: number): TrackerBenchResult {
  const result: TrackerBenchResult = { figures: [], capExceeded: false, warnings: [] };
  const c = cap.toLocaleString('en-US');
  progress(`rss: child processes with an empty engine and engines holding ${c} sources`);
  const empty = child(['compact', String(cap), '0', 'v4']);
  const bare = child(['compact', String(cap), '0', 'v4', 'bare']);
  const runs = [
    { key: 'compact.v4', label: `engine full, ${c} v4 sources`, report: child(['compact', String(cap), String(cap), 'v4']) },
    { key: 'compact.mixed', label: `engine full, ${c} mixed sources`, report: child(['compact', String(cap), String(cap), 'mixed']) },
    { key: 'old.v4', label: `old tracker full, ${c} v4 sources`, report: child(['old', String(cap), String(cap), 'v4']) },
  ];
  result.figures.push(
    { id: 'rss.empty', name: "rss: child with the agent's code, empty engine", value: empty.rss / 2 ** 20, unit: 'MiB', extra: { ...empty } },
    { id: 'rss.bare', name: "  without the agent's code (engine only)", value: bare.rss / 2 ** 20, unit: 'MiB', baseline: 'empty', baselineId: 'rss.empty', ratio: bare.rss / empty.rss, extra: { ...bare } },
  );
  for (const { key, label, report } of runs) {
    if (report.tracked > cap) {
      result.capExceeded = true;
      result.warnings.push(`CAP EXCEEDED: rss child ${key}: ${report.tracked} tracked, cap ${cap}`);
    }
    result.figures.push({
      id: `rss.${key}`,
      name: `rss: child with ${label}`,
      value: report.rss / 2 ** 20,
      unit: 'MiB',
      baseline: 'empty',
      baselineId: 'rss.empty',
      ratio: report.rss / empty.rss,
      extra: { ...report, rssDeltaPerSource: (report.rss - empty.rss) / cap },
    });
  }
  // What the full engine adds to the process, with Node's and glibc's defaults and with the
  // agent container's runtime settings (the chart's agent.runtimeEnv): a fixed mmap threshold
  // returns the tracker's outgrown arrays to the system instead of leaving them in malloc's heap.
  const chart = agentRuntimeEnv();
  const chartEmpty = child(['compact', String(cap), '0', 'v4'], chart);
  for (const mix of ['v4', 'mixed'] as const) {
    const plain = runs.find((r) => r.key === `compact.${mix}`)!.report;
    const withChart = child(['compact', String(cap), String(cap), mix], chart);
    const plainDelta = (plain.rss - empty.rss) / 2 ** 20;
    const chartDelta = (withChart.rss - chartEmpty.rss) / 2 ** 20;
    result.figures.push(
      { id: `rss.added.${mix}`, name: `rss: added by a full engine, ${c} ${mix} sources`, value: plainDelta, unit: 'MiB', extra: { typedArrays: plain.arrayBuffers / 2 ** 20 } },
      {
        id: `rss.added.${mix}.chart`,
        name: `  with the agent container's runtime settings (${Object.entries(chart).map(([k, v]) => `${k}=${v}`).join(' ')})`,
        value: chartDelta,
        unit: 'MiB',
        baseline: 'defaults',
        baselineId: `rss.added.${mix}`,
        ratio: chartDelta / plainDelta,
        extra: { emptyRss: chartEmpty.rss, fullRss: withChart.rss, typedArrays: withChart.arrayBuffers / 2 ** 20 },
      },
    );
  }
  return result;
}
