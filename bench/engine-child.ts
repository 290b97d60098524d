// Child process of the tracker benchmark: loads the agent's code (as an agent's process
// holds it; not with `bare`), builds an engine capped at CAP, feeds it N distinct sources,
// collects garbage and prints its memory as JSON. Run under --expose-gc:
//   node --expose-gc dist/bench/engine-child.js compact|old CAP N v4|mixed [bare]
import { Engine, engineConfig } from '../src/engine/engine.js';
import { compileDocument } from '../src/policy/compiled.js';
import { defaultPolicy } from '../src/policy/default.js';
import { OldSourceTracker } from './old-tracker.js';
import { mixedAddress, type ChildReport } from './tracker-bench.js';
import { addressOf } from '../src/net/address.js';

const USAGE = 'usage: node --expose-gc engine-child.js compact|old CAP N v4|mixed [bare]';

async function main(): Promise<number> {
  const [impl, capText, countText, mix, bare] = process.argv.slice(2);
  const cap = Number(capText);
  const count = Number(countText);
  if ((impl !== 'compact' && impl !== 'old') || !Number.isInteger(cap) || cap < 1 || !Number.isInteger(count) || count < 0 || (mix !== 'v4' && mix !== 'mixed') || (bare !== undefined && bare !== 'bare')) {
    process.stderr.write(`engine child: bad arguments ${JSON.stringify(process.argv.slice(2))}\n${USAGE}\n`);
    return 2;
  }
  const gc = globalThis.gc;
  if (!gc) {
    process.stderr.write('engine child: run under --expose-gc\n');
    return 2;
  }
  if (!bare) await import('../src/agent/agent.js');
  const time = Date.UTC(2025, 0, 1);
  // Counted, never answered: the trigger is out of reach.
  const config = { ...engineConfig(compileDocument(defaultPolicy())), maxTrackedSources: cap, triggerCount: 1_000_000, ignore: [] };
  const engine = impl === 'compact' ? new Engine(config, time) : undefined;
  const old = impl === 'old' ? new OldSourceTracker(cap, config.windowMs) : undefined;
  for (let i = 0; i < count; i++) {
    const probe = { time, protocol: 'tcp', mode: 'stealth', source: addressOf(mixedAddress(i, mix))!, port: 22 + (i % 1000), type: 'syn', verified: false } as const;
    if (engine) engine.decide(probe);
    else old!.record(probe);
  }
  gc();
  gc();
  const m = process.memoryUsage();
  const report: ChildReport = {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    tracked: engine ? engine.trackedSources : old!.size,
    evicted: engine ? engine.evictedSources : old!.evicted,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

process.exitCode = await main();
