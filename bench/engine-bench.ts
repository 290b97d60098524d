// Engine figures: decide() throughput for three traffic shapes against a plain Map
// baseline (the tracker's own figures, memory included, are in tracker-bench.ts).
import type { Probe } from '../src/engine/probe.js';
import { Engine, engineConfig, type Decision, type EngineConfig } from '../src/engine/engine.js';
import { addressOf } from '../src/net/address.js';
import { parseCidr } from '../src/net/ip.js';
import { compileDocument } from '../src/policy/compiled.js';
import { defaultPolicy } from '../src/policy/default.js';
import { measure, progress, type Figure, type MeasureOptions } from './harness.js';

/** A fixed clock: every probe lands inside the window, so nothing ages out mid-run. */
const T0 = Date.UTC(2025, 0, 1);

/** The default policy with a trigger no run can reach: every probe is counted, never answered. */
export function benchConfig(overrides: Partial<EngineConfig> = {}): EngineConfig {
  return { ...engineConfig(compileDocument(defaultPolicy())), triggerCount: 1_000_000_000, ...overrides };
}

/** Distinct IPv4 sources in 10.0.0.0/8 (not ignored by default), canonical text. */
export function sourceAddress(i: number): string {
  return `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
}

function probe(source: string, port: number): Probe {
  return { time: T0, protocol: 'tcp', mode: 'stealth', source: addressOf(source)!, port, type: 'syn', flags: 'S', verified: false };
}

export interface ThroughputSizes {
  /** Probes in the one-source scenario (ports cycle through 1..65535). */
  oneSourceProbes: number;
  /** Distinct sources in the many-sources scenario, and the tracker cap it runs under. */
  manySources: number;
  manySourcesCap: number;
  /** Probes per run of the many-sources stream (eviction makes a probe costly: sample a slice). */
  manySourcesChunk: number;
  /** Probes from ignored sources. */
  ignoredProbes: number;
}

export interface EngineBenchResult {
  figures: Figure[];
  capExceeded: boolean;
  warnings: string[];
}

/** Decisions seen and those of the expected kind, checked after the timed loops. */
let observed = 0;
let matched = 0;

function decideRange(engine: Engine, probes: readonly Probe[], from: number, to: number, expected: Decision['kind']): void {
  let m = 0;
  for (let i = from; i < to; i++) if (engine.decide(probes[i]!).kind === expected) m++;
  matched += m;
  observed += to - from;
}

/** The baseline: what one Map lookup and update per probe costs, keyed the same way. */
function mapRange(map: Map<string, number>, probes: readonly Probe[], from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const key = probes[i]!.source.text;
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}

/**
 * A run for measure(): the next `chunk` probes of the prebuilt array, read as an endless
 * stream (wrapping round), so a long input can be sampled a slice at a time.
 */
function streamRun(length: number, chunk: number, startAt: number, body: (from: number, to: number) => void): () => number {
  let cursor = startAt % length;
  return () => {
    for (let left = chunk; left > 0; ) {
      const to = Math.min(length, cursor + left);
      body(cursor, to);
      left -= to - cursor;
      cursor = to === length ? 0 : to;
    }
    return chunk;
  };
}

interface Scenario {
  key: string;
  label: string;
  probes: Probe[];
  config: EngineConfig;
  expected: Decision['kind'];
  /** Probes per run (default: all of them). */
  chunk?: number;
  /** Probes observed, untimed, before the warm-up (to fill the tracker to its cap). */
  prefill?: number;
  extra: Record<string, number | string | boolean>;
}

function throughputScenario(s: Scenario, opts: MeasureOptions, result: EngineBenchResult): void {
  const { probes } = s;
  const chunk = Math.min(s.chunk ?? probes.length, probes.length);
  progress(`decide: ${s.label} (${probes.length.toLocaleString('en-US')} prebuilt probes, ${chunk.toLocaleString('en-US')} per run)`);
  // The baseline map holds every key before timing, as the tracker holds its sources.
  const map = new Map<string, number>();
  mapRange(map, probes, 0, probes.length);
  const base = measure(
    streamRun(probes.length, chunk, 0, (from, to) => mapRange(map, probes, from, to)),
    opts,
  );

  const engine = new Engine(s.config, T0);
  let maxTracked = 0;
  observed = 0;
  matched = 0;
  const prefill = Math.min(s.prefill ?? 0, probes.length);
  decideRange(engine, probes, 0, prefill, s.expected);
  const run = streamRun(probes.length, chunk, prefill, (from, to) => decideRange(engine, probes, from, to, s.expected));
  const m = measure(() => {
    const n = run();
    maxTracked = Math.max(maxTracked, engine.trackedSources);
    return n;
  }, opts);
  if (matched !== observed || observed === 0)
    result.warnings.push(`${s.label}: ${observed - matched} of ${observed} decisions were not "${s.expected}"`);
  if (maxTracked > s.config.maxTrackedSources) {
    result.capExceeded = true;
    result.warnings.push(`CAP EXCEEDED: ${s.label}: ${maxTracked} tracked, cap ${s.config.maxTrackedSources}`);
  }

  const baseId = `decide.${s.key}.map`;
  const extra = {
    ...s.extra,
    chunk,
    prefill,
    probesTimed: m.opsPerSample * opts.reps,
    probesPerSample: m.opsPerSample,
    trackedAfter: engine.trackedSources,
    evicted: engine.evictedSources,
    maxTracked,
  };
  const baseExtra = { opsPerSample: base.opsPerSample, mapSize: map.size };
  result.figures.push(
    {
      id: `decide.${s.key}.probesPerSec`,
      name: `decide ${s.label}`,
      value: 1e9 / m.nsPerOp,
      unit: 'probes/s',
      baseline: 'Map',
      baselineId: `${baseId}.opsPerSec`,
      ratio: base.nsPerOp / m.nsPerOp,
      samples: m.samplesNsPerOp.map((ns) => 1e9 / ns),
      extra,
    },
    {
      id: `decide.${s.key}.nsPerProbe`,
      name: `decide ${s.label}`,
      value: m.nsPerOp,
      unit: 'ns/probe',
      baseline: 'Map',
      baselineId: `${baseId}.nsPerOp`,
      ratio: m.nsPerOp / base.nsPerOp,
      samples: m.samplesNsPerOp,
      extra,
    },
    {
      id: `${baseId}.opsPerSec`,
      name: `  baseline Map get+set, same keys`,
      value: 1e9 / base.nsPerOp,
      unit: 'ops/s',
      samples: base.samplesNsPerOp.map((ns) => 1e9 / ns),
      extra: baseExtra,
    },
    {
      id: `${baseId}.nsPerOp`,
      name: `  baseline Map get+set, same keys`,
      value: base.nsPerOp,
      unit: 'ns/op',
      samples: base.samplesNsPerOp,
      extra: baseExtra,
    },
  );
}

export function engineThroughput(sizes: ThroughputSizes, opts: MeasureOptions): EngineBenchResult {
  const result: EngineBenchResult = { figures: [], capExceeded: false, warnings: [] };

  // (a) One scanner walking the port range; the source's recorded probes stay bounded.
  {
    const probes: Probe[] = [];
    const source = '198.51.100.7';
    for (let i = 0; i < sizes.oneSourceProbes; i++) probes.push(probe(source, (i % 65535) + 1));
    throughputScenario(
      {
        key: 'oneSource',
        label: '(a) one source, many ports',
        probes,
        config: benchConfig(),
        expected: 'counted',
        extra: { probes: probes.length, sources: 1 },
      },
      opts,
      result,
    );
  }

  // (b) More distinct sources than the tracker holds: full from the start, every probe creates a
  // state and evicts the least recently seen. Timed a slice at a time along the source stream.
  {
    const probes: Probe[] = [];
    for (let i = 0; i < sizes.manySources; i++) probes.push(probe(sourceAddress(i), 22 + (i % 1000)));
    throughputScenario(
      {
        key: 'manySources',
        label: `(b) ${sizes.manySources.toLocaleString('en-US')} sources, cap ${sizes.manySourcesCap.toLocaleString('en-US')}`,
        probes,
        config: benchConfig({ maxTrackedSources: sizes.manySourcesCap }),
        expected: 'counted',
        chunk: sizes.manySourcesChunk,
        prefill: sizes.manySourcesCap,
        extra: { probes: probes.length, sources: sizes.manySources, cap: sizes.manySourcesCap },
      },
      opts,
      result,
    );
  }

  // (c) Sources on the ignore list (the default list has 127.0.0.0/8): parse and trie walk only.
  {
    const probes: Probe[] = [];
    for (let i = 0; i < sizes.ignoredProbes; i++)
      probes.push(probe(`127.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, 22 + (i % 1000)));
    const config = benchConfig({
      ignore: [...defaultPolicy().spec.ignore, '10.0.0.0/8', '192.168.0.0/16', 'fd00::/8'].map((c) => parseCidr(c)!),
    });
    throughputScenario(
      {
        key: 'ignored',
        label: '(c) ignored sources',
        probes,
        config,
        expected: 'ignored',
        extra: { probes: probes.length, ignoreEntries: config.ignore.length },
      },
      opts,
      result,
    );
  }
  return result;
}
