// Benchmark runner for the engine: `npm run bench -- [--quick] [--out FILE]`.
// Prints a table of figures (each with its ratio to a baseline measured in this process)
// and writes them as JSON. Nothing here fails on timings; the one failing check is the
// tracker cap, which is a correctness property: a "CAP EXCEEDED" line and a non-zero exit.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { engineThroughput, type ThroughputSizes } from './engine-bench.js';
import { moduleCost } from './module-cost.js';
import { formatTable, progress, type Figure, type MeasureOptions } from './harness.js';
import { engineRss, trackerMemory, trackerThroughput, type TrackerSizes } from './tracker-bench.js';
import { trieBench, type TrieSizes } from './trie-bench.js';

const USAGE = `usage: node dist/bench/run.js [--quick] [--out FILE]
  --quick     a short smoke run (a few seconds): smaller inputs, fewer samples
  --out FILE  where the JSON goes (default bench-results/engine.json)`;

interface Plan {
  measure: MeasureOptions;
  throughput: ThroughputSizes;
  tracker: TrackerSizes;
  memoryCaps: number[];
  /** Cap of the engine held by the RSS child processes. */
  rssCap: number;
  trie: TrieSizes;
}

const FULL: Plan = {
  measure: { warmup: 1, reps: 5, minSampleMs: 100 },
  throughput: { oneSourceProbes: 200_000, manySources: 1_000_000, manySourcesCap: 100_000, manySourcesChunk: 50_000, ignoredProbes: 200_000 },
  tracker: { oneSourceProbes: 200_000, sources: 1_000_000, evictingCap: 100_000, chunk: 50_000 },
  memoryCaps: [100_000, 1_000_000],
  rssCap: 1_000_000,
  trie: { listSizes: [10, 1_000, 100_000], lookups: 100_000 },
};

const QUICK: Plan = {
  measure: { warmup: 1, reps: 3, minSampleMs: 10 },
  throughput: { oneSourceProbes: 20_000, manySources: 50_000, manySourcesCap: 5_000, manySourcesChunk: 5_000, ignoredProbes: 20_000 },
  tracker: { oneSourceProbes: 20_000, sources: 50_000, evictingCap: 5_000, chunk: 5_000 },
  memoryCaps: [10_000, 50_000],
  rssCap: 50_000,
  trie: { listSizes: [10, 1_000, 10_000], lookups: 10_000 },
};

/** Re-runs this script under --expose-gc (the memory figures need global.gc); returns its exit code. */
function reexecWithGc(): number {
  if (process.env.KPS_BENCH_REEXEC === '1') {
    process.stderr.write('bench: global.gc is unavailable even under --expose-gc\n');
    return 2;
  }
  const child = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, KPS_BENCH_REEXEC: '1' },
  });
  if (child.error) {
    process.stderr.write(`bench: cannot re-run under --expose-gc: ${child.error.message}\n`);
    return 2;
  }
  return child.status ?? 1;
}

function main(): number {
  let args;
  try {
    args = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        out: { type: 'string', default: 'bench-results/engine.json' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  const gc = globalThis.gc;
  if (!gc) return reexecWithGc();

  const quick = args.quick === true;
  const plan = quick ? QUICK : FULL;
  const out = resolve(args.out ?? 'bench-results/engine.json');
  const started = process.hrtime.bigint();
  progress(`${quick ? 'quick' : 'full'} run, JSON to ${out}`);

  // Memory first, while the heap holds nothing else.
  const memory = trackerMemory(plan.memoryCaps, gc);
  const rss = engineRss(plan.rssCap);
  const load = moduleCost();
  gc();
  const tracker = trackerThroughput(plan.tracker, plan.measure);
  gc();
  const throughput = engineThroughput(plan.throughput, plan.measure);
  gc();
  const trie = trieBench(plan.trie, plan.measure);

  const parts = [tracker, memory, rss, throughput];
  const figures: Figure[] = [...tracker.figures, ...memory.figures, ...rss.figures, ...load, ...throughput.figures, ...trie];
  const warnings = parts.flatMap((p) => p.warnings);
  const capExceeded = parts.some((p) => p.capExceeded);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;

  const cpuList = cpus();
  const report = {
    benchmark: 'engine',
    timestamp: new Date().toISOString(),
    quick,
    elapsedMs,
    machine: {
      node: process.version,
      v8: process.versions.v8,
      platform: process.platform,
      arch: process.arch,
      cpuModel: cpuList[0]?.model ?? 'unknown',
      cores: cpuList.length,
      totalMemory: totalmem(),
    },
    settings: plan,
    capExceeded,
    warnings,
    figures,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(
    `kube-portsentry engine benchmark (${quick ? 'quick' : 'full'}) — node ${process.version}, ` +
      `${report.machine.cpuModel.trim()} x${report.machine.cores}\n` +
      'medians of repeated samples; ratios compare with a baseline measured in this process\n\n' +
      `${formatTable(figures)}\n\n`,
  );
  for (const w of warnings) process.stdout.write(`${w.startsWith('CAP EXCEEDED') ? '' : 'WARNING: '}${w}\n`);
  process.stdout.write(`${(elapsedMs / 1000).toFixed(1)} s; JSON written to ${out}\n`);
  return capExceeded ? 1 : 0;
}

process.exitCode = main();
