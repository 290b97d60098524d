// Measurement helpers shared by the benchmarks: timing with process.hrtime.bigint(), a
// warm-up run, repeated samples reduced to their median, figures and the printed table.
// Nothing here asserts on time: figures are reported, never judged.

export interface Figure {
  /** Stable key for machines comparing runs. */
  id: string;
  /** Human-readable name for the table. */
  name: string;
  value: number;
  unit: string;
  /** Short label of what this figure is compared with (measured in the same process). */
  baseline?: string;
  /** Id of the baseline figure, when the baseline is one. */
  baselineId?: string;
  /** value / baseline value, both in this figure's unit. */
  ratio?: number;
  /** Every sample behind a median, in the figure's unit. */
  samples?: number[];
  /** Anything else worth keeping (sizes, counts, derived values). */
  extra?: Record<string, number | string | boolean>;
}

export interface MeasureOptions {
  /** Untimed runs before sampling (at least one: it also calibrates the rounds per sample). */
  warmup: number;
  /** Timed samples; the median is reported. */
  reps: number;
  /** Each sample repeats the work until it lasts at least this long (timer resolution, noise). */
  minSampleMs: number;
}

export interface Measurement {
  /** Median nanoseconds per operation. */
  nsPerOp: number;
  /** Nanoseconds per operation of every sample, in run order. */
  samplesNsPerOp: number[];
  /** Operations per sample. */
  opsPerSample: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Times `run`, which does a fixed amount of prepared work and returns how many operations
 * it did. The warm-up runs are untimed except for calibrating how many runs make a sample.
 */
export function measure(run: () => number, opts: MeasureOptions): Measurement {
  let calibrationNs = 0;
  for (let i = 0; i < Math.max(1, opts.warmup); i++) {
    const t0 = process.hrtime.bigint();
    run();
    calibrationNs = Number(process.hrtime.bigint() - t0);
  }
  const rounds = Math.max(1, Math.ceil((opts.minSampleMs * 1e6) / Math.max(1, calibrationNs)));
  const samples: number[] = [];
  let opsPerSample = 0;
  for (let rep = 0; rep < opts.reps; rep++) {
    let ops = 0;
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) ops += run();
    const ns = Number(process.hrtime.bigint() - t0);
    samples.push(ns / ops);
    opsPerSample = ops;
  }
  return { nsPerOp: median(samples), samplesNsPerOp: samples, opsPerSample };
}

/** Deterministic PRNG (mulberry32) so every run works on the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const started = process.hrtime.bigint();

/** Progress goes to stderr (with the time since start) so stdout holds only the table. */
export function progress(message: string): void {
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  process.stderr.write(`bench [${s.toFixed(1).padStart(5)}s]: ${message}\n`);
}

export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    formatValue(f.value),
    f.unit,
    f.ratio === undefined ? '' : `${formatValue(f.ratio)}x vs ${f.baseline}`,
  ]);
  const header = ['figure', 'value', 'unit', 'ratio (value / baseline value)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
