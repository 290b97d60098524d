// Run by bench/cluster.ts in the scanner namespace: for each stdin line "SOURCE TARGET PORT"
// sends one TCP SYN from SOURCE, and prints "sent SOURCE <ns>" with the process.hrtime
// (CLOCK_MONOTONIC) taken just before the send, the clock the node watchers stamp with.
import { createInterface } from 'node:readline';
import { openSynSender, synPacket } from '../support/raw-syn.js';

const sender = openSynSender();
let seq = 1;
for await (const line of createInterface({ input: process.stdin })) {
  const [source, target, port] = line.trim().split(' ');
  if (!source || !target || !port) throw new Error(`cluster-probe: expected "SOURCE TARGET PORT", got ${JSON.stringify(line)}`);
  const packet = synPacket(source, target, Number(port), seq++);
  const t = process.hrtime.bigint();
  await sender.send(packet, target);
  process.stdout.write(`sent ${source} ${t}\n`);
}
sender.close();
