// Run by bench/detector.ts inside a test namespace: times adding one address to an
// nftables interval set, the sentry's netlink path against the previous one (spawning
// `nft -f -` per address), alternated so both see the same set sizes, first on an empty
// set, then on one already holding `--prefill` addresses. Prints JSON on stdout.
import { parseArgs } from 'node:util';
import { addressOf } from '../src/net/address.js';
import { NftablesFirewall } from '../src/respond/firewall/nftables.js';
import { runProgram } from '../src/respond/run-program.js';

const TABLE = 'kps_bench_fw';
const address = (i: number) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const { values } = parseArgs({ options: { adds: { type: 'string', default: '200' }, prefill: { type: 'string', default: '10000' } } });
const adds = Number(values.adds);
const prefill = Number(values.prefill);
const fw = new NftablesFirewall('nft', TABLE);
await fw.setup();
const result: Record<string, { netlink: number[]; spawn: number[] }> = {};
let next = 0;
try {
  for (const size of [0, prefill]) {
    if (size > next) {
      const elements: string[] = [];
      for (; next < size; next++) elements.push(`${address(next)} timeout 3600s`);
      await runProgram(['nft', '-f', '-'], { input: `add element inet ${TABLE} blocked4 { ${elements.join(', ')} }\n` });
    }
    const r = (result[String(size)] = { netlink: [] as number[], spawn: [] as number[] });
    for (let i = 0; i < adds; i++) {
      const a = addressOf(address(next++))!; // parsed where it came in, as a probe's source is
      const b = address(next++);
      r.netlink.push(await timed(() => fw.add(a, 3_600_000)));
      r.spawn.push(await timed(() => runProgram(['nft', '-f', '-'], { input: `add element inet ${TABLE} blocked4 { ${b} timeout 3600s }\n` })));
    }
  }
} finally {
  await fw.teardown();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
