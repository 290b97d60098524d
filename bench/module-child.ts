// Child process of the module-load benchmark: imports the modules named on its command line
// (package names, or paths under dist/ such as src/agent/agent.js), collects garbage and
// prints its memory as JSON. Run under --expose-gc:
//   node --expose-gc dist/bench/module-child.js [MODULE...]
const DIST = new URL('../', import.meta.url);

async function main(): Promise<number> {
  const gc = globalThis.gc;
  if (!gc) {
    process.stderr.write('module child: run under --expose-gc\n');
    return 2;
  }
  for (const spec of process.argv.slice(2)) await import(spec.startsWith('src/') ? new URL(spec, DIST).href : spec);
  // Module evaluation may leave timers (prom-client's default metrics are not started here).
  await new Promise((r) => setTimeout(r, 100));
  gc();
  gc();
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external })}\n`);
  return 0;
}

process.exitCode = await main();
