// Run by the benchmarks in the scanner namespace: one SYN from each of `--count` sources
// (198.18.1.1 and up, the test range), `--interval-ms` apart, from one long-lived process,
// so the latency figures do not carry the cost of starting hping3 per source.
// Prints "sent N" when done.
import { parseArgs } from 'node:util';
import { openSynSender, synPacket } from '../support/raw-syn.js';

const benchSource = (i: number): string => `198.18.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`;

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    port: { type: 'string', default: '1' },
    count: { type: 'string', default: '200' },
    first: { type: 'string', default: '0' },
    'interval-ms': { type: 'string', default: '20' },
  },
});
const sender = openSynSender();
const count = Number(values.count);
const first = Number(values.first);
for (let i = first; i < first + count; i++) {
  const packet = synPacket(benchSource(i), values.target!, Number(values.port), i + 1);
  await sender.send(packet, values.target!);
  await new Promise((r) => setTimeout(r, Number(values['interval-ms'])));
}
sender.close();
process.stdout.write(`sent ${count}\n`);
