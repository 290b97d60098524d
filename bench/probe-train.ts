// Run by bench/fastpath.ts in the scanner namespace: from one source, a SYN to the
// tripwire port, then `--count` SYNs to a port that is no tripwire, back to back. What got
// through is read from the target's nftables counters. (Send times are no measure of the
// block's time: the target may handle the packets later, in a batch.)
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  send(buf: Buffer, offset: number, length: number, address: string, after: (err?: Error) => void): void;
  close(): void;
}
const raw = createRequire(import.meta.url)('raw-socket') as {
  createSocket(options: { protocol: number }): RawSocket;
  createChecksum(...parts: (Buffer | { buffer: Buffer; offset: number; length: number })[]): number;
  SocketLevel: { IPPROTO_IP: number };
  SocketOption: { IP_HDRINCL: number };
  Protocol: { TCP: number };
};

function syn(source: string, target: string, port: number, seq: number): Buffer {
  const p = Buffer.alloc(40);
  p[0] = 0x45;
  p.writeUInt16BE(40, 2);
  p[8] = 64;
  p[9] = 6;
  source.split('.').forEach((b, i) => (p[12 + i] = Number(b)));
  target.split('.').forEach((b, i) => (p[16 + i] = Number(b)));
  p.writeUInt16BE(30000 + (seq % 30000), 20);
  p.writeUInt16BE(port, 22);
  p.writeUInt32BE(seq, 24);
  p[32] = 0x50;
  p[33] = 0x02;
  p.writeUInt16BE(64240, 34);
  const pseudo = Buffer.alloc(12);
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(20, 10);
  p.writeUInt16BE(raw.createChecksum(pseudo, { buffer: p, offset: 20, length: 20 }), 36);
  return p;
}

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    target: { type: 'string' },
    tripwire: { type: 'string', default: '1' },
    other: { type: 'string', default: '2' },
    count: { type: 'string', default: '400' },
  },
});
const socket = raw.createSocket({ protocol: raw.Protocol.TCP });
socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
const count = Number(values.count);
const packets = [syn(values.source!, values.target!, Number(values.tripwire), 1)];
for (let i = 0; i < count; i++) packets.push(syn(values.source!, values.target!, Number(values.other), i + 2));
// Queued at once: raw-socket sends one per turn of the event loop, as fast as it turns.
await Promise.all(
  packets.map(
    (p) =>
      new Promise<void>((resolve, reject) =>
        socket.send(p, 0, p.length, values.target!, (err) => {
          if (err) reject(err);
          else resolve();
        }),
      ),
  ),
);
socket.close();
process.stdout.write(`sent ${packets.length}\n`);
