// Run by bench/fastpath.ts in the scanner namespace: from one source, a SYN to the
// tripwire port, then `--count` SYNs to a port that is no tripwire, back to back. What got
// through is read from the target's nftables counters. (Send times are no measure of the
// block's time: the target may handle the packets later, in a batch.)
import { parseArgs } from 'node:util';
import { openSynSender, synPacket } from '../support/raw-syn.js';

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    target: { type: 'string' },
    tripwire: { type: 'string', default: '1' },
    other: { type: 'string', default: '2' },
    count: { type: 'string', default: '400' },
  },
});
const sender = openSynSender();
const count = Number(values.count);
const packets = [synPacket(values.source!, values.target!, Number(values.tripwire), 1)];
for (let i = 0; i < count; i++) packets.push(synPacket(values.source!, values.target!, Number(values.other), i + 2));
// Queued at once: raw-socket sends one per turn of the event loop, as fast as it turns.
await Promise.all(packets.map((p) => sender.send(p, values.target!)));
sender.close();
process.stdout.write(`sent ${packets.length}\n`);
