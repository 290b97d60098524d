// Run in a scanner namespace: one SYN to `--port` from each of `--count` forged sources,
// 198.19.0.0/16 from index `--first` up (198.19.0.1, 198.19.0.2, ...), `--rounds` times
// over, about `--rate` packets a second. The test range only: the target's answers to it
// must go nowhere (see TestNet). Prints "sent N" when done.
import { parseArgs } from 'node:util';
import { openSynSender, synPacket } from './raw-syn.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    port: { type: 'string', default: '1' },
    count: { type: 'string', default: '1000' },
    first: { type: 'string', default: '1' },
    rate: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '1' },
  },
});
const count = Number(values.count);
const first = Number(values.first);
const rate = Number(values.rate);
const rounds = Number(values.rounds);
if (!values.target || !(first >= 1) || !(count >= 1) || first + count > 65535 || !(rate > 0) || !(rounds >= 1))
  throw new Error('usage: spoof-flood --target ADDR [--port N] [--count N] [--first N] [--rate PPS] [--rounds N], sources within 198.19.0.1-198.19.255.254');

const sender = openSynSender();
const BATCH = 50;
const started = performance.now();
const total = count * rounds;
for (let i = 0; i < total; i += BATCH) {
  const sends: Promise<void>[] = [];
  for (let j = i; j < Math.min(i + BATCH, total); j++) {
    const n = first + (j % count);
    sends.push(sender.send(synPacket(`198.19.${n >> 8}.${n & 255}`, values.target, Number(values.port), n), values.target));
  }
  await Promise.all(sends);
  // Keep to the rate: wait until this batch's time has come.
  const due = ((i + BATCH) / rate) * 1000 - (performance.now() - started);
  if (due > 1) await new Promise((r) => setTimeout(r, due));
}
sender.close();
process.stdout.write(`sent ${total}\n`);
