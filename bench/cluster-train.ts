// Run by bench/cluster-fastpath.ts in the scanner namespace: from one source, a SYN to the
// tripwire port of the first target, then `--burst` SYNs back to back to a port that is
// no tripwire on that target, then one SYN to that port on each of the other targets every
// millisecond for `--ms` milliseconds (the scanner moving on to the other nodes while the
// block travels). What got through is counted on the nodes, by their own nftables counters.
import { parseArgs } from 'node:util';
import { openSynSender, synPacket } from '../support/raw-syn.js';

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    targets: { type: 'string' },
    tripwire: { type: 'string', default: '1' },
    port: { type: 'string', default: '8080' },
    burst: { type: 'string', default: '400' },
    ms: { type: 'string', default: '1000' },
  },
});
const source = values.source!;
const [first, ...others] = values.targets!.split(',');
const port = Number(values.port);
const sender = openSynSender();
let seq = 1;
const send = (target: string, to: number) => sender.send(synPacket(source, target, to, seq++), target);
// The probe and the burst queued at once: raw-socket sends one per turn of the event loop.
const b0 = performance.now();
const burst: Promise<void>[] = [send(first!, Number(values.tripwire))];
for (let i = 0; i < Number(values.burst); i++) burst.push(send(first!, port));
await Promise.all(burst);
const burstMs = performance.now() - b0;
const t0 = performance.now();
const ms = Number(values.ms);
let sent = 0;
for (let i = 0; i < ms; i++) {
  await Promise.all(others.map((target) => send(target, port)));
  sent++;
  const wait = t0 + i + 1 - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
sender.close();
process.stdout.write(`${JSON.stringify({ burstMs, paced: sent, pacedMs: performance.now() - t0 })}\n`);
