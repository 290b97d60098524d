// Run by the benchmarks in the scanner namespace: one SYN from each of `--count` sources
// (198.18.1.1 and up, the test range), `--interval-ms` apart, from one long-lived process,
// so the latency figures do not carry the cost of starting hping3 per source.
// Prints "sent N" when done.
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

export const benchSource = (i: number): string => `198.18.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`;

function synPacket(source: string, target: string, port: number, seq: number): Buffer {
  const p = Buffer.alloc(40);
  p[0] = 0x45;
  p.writeUInt16BE(40, 2);
  p[8] = 64;
  p[9] = 6;
  source.split('.').forEach((b, i) => (p[12 + i] = Number(b)));
  target.split('.').forEach((b, i) => (p[16 + i] = Number(b)));
  p.writeUInt16BE(40000 + (seq % 20000), 20);
  p.writeUInt16BE(port, 22);
  p.writeUInt32BE(seq, 24);
  p[32] = 0x50; // data offset 5 words
  p[33] = 0x02; // SYN
  p.writeUInt16BE(64240, 34);
  // TCP checksum over the pseudo-header (addresses, protocol, length) and the segment.
  const pseudo = Buffer.alloc(12);
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(20, 10);
  p.writeUInt16BE(raw.createChecksum(pseudo, { buffer: p, offset: 20, length: 20 }), 36);
  return p; // the kernel fills in the IP checksum (IP_HDRINCL)
}

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    port: { type: 'string', default: '1' },
    count: { type: 'string', default: '200' },
    first: { type: 'string', default: '0' },
    'interval-ms': { type: 'string', default: '20' },
  },
});
const socket = raw.createSocket({ protocol: raw.Protocol.TCP });
socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
const count = Number(values.count);
const first = Number(values.first);
for (let i = first; i < first + count; i++) {
  const packet = synPacket(benchSource(i), values.target!, Number(values.port), i + 1);
  await new Promise<void>((resolve, reject) => socket.send(packet, 0, packet.length, values.target!, (err) => (err ? reject(err) : resolve())));
  await new Promise((r) => setTimeout(r, Number(values['interval-ms'])));
}
socket.close();
process.stdout.write(`sent ${count}\n`);
