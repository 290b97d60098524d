// Run by bench/cluster.ts inside a node's network namespace: timestamps every element the
// kernel adds to the agent's nftables sets, as `nft monitor` reports them (one netlink
// event per element, flushed per line), with process.hrtime (CLOCK_MONOTONIC, the clock
// the probe sender stamps its packets with). Prints "ready" once the monitor is proven
// subscribed (a sentinel element it added came back), then "<ns> <set> <address>" lines.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { DEFAULT_INSTANCE, firewallNames } from '../src/respond/firewall/owner.js';
import { runProgram } from '../src/respond/run-program.js';

/** The agents' nftables table (they run with the default instance). */
const NFT_TABLE = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE }).table;

/** Never a probe source or a BlockedHost of the bench; it lives one second in the set. */
const SENTINEL = '198.19.255.254';

const LINE = new RegExp(`^add element inet ${NFT_TABLE} (blocked[46]|blockednet[46]) \\{ (\\S+)`);

const monitor = spawn('nft', ['monitor', 'new', 'elements'], { stdio: ['ignore', 'pipe', 'inherit'] });
let ready = false;
createInterface({ input: monitor.stdout }).on('line', (line) => {
  const t = process.hrtime.bigint();
  const m = LINE.exec(line);
  if (!m) return;
  if (m[2] === SENTINEL) {
    if (!ready) process.stdout.write('ready\n');
    ready = true;
    return;
  }
  process.stdout.write(`${t} ${m[1]} ${m[2]}\n`);
});
monitor.once('exit', (code) => {
  process.stderr.write(`nft monitor exited (${code})\n`);
  process.exit(1);
});
process.once('SIGTERM', () => {
  monitor.kill('SIGTERM');
  process.exit(0);
});
for (let i = 0; !ready; i++) {
  if (i === 50) throw new Error('nft monitor did not report the sentinel element within 5 s');
  await runProgram(['nft', 'add', 'element', 'inet', NFT_TABLE, 'blocked4', `{ ${SENTINEL} timeout 1s }`]);
  await new Promise((r) => setTimeout(r, 100));
}
