// Hand-made TCP SYNs on a raw socket (IPv4 with IP_HDRINCL; IPv6 with IPPROTO_RAW, which
// implies the header), for the load generators and the forged probes of tests, run in the
// scanner namespace. raw-socket is a dev dependency: only benchmarks and tests send packets.
import { createRequire } from 'node:module';
import { parseIp } from '../src/net/ip.js';

interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  send(buf: Buffer, offset: number, length: number, address: string, after: (err?: Error) => void): void;
  close(): void;
}
const raw = createRequire(import.meta.url)('raw-socket') as {
  createSocket(options: { protocol: number; addressFamily?: number }): RawSocket;
  createChecksum(...parts: (Buffer | { buffer: Buffer; offset: number; length: number })[]): number;
  SocketLevel: { IPPROTO_IP: number };
  SocketOption: { IP_HDRINCL: number };
  Protocol: { TCP: number };
  AddressFamily: { IPv6: number };
};

/** A TCP header with SYN set at `at` (checksum left to the caller). */
function synHeader(p: Buffer, at: number, port: number, seq: number): void {
  p.writeUInt16BE(40000 + (seq % 20000), at);
  p.writeUInt16BE(port, at + 2);
  p.writeUInt32BE(seq, at + 4);
  p[at + 12] = 0x50; // data offset 5 words
  p[at + 13] = 0x02; // SYN
  p.writeUInt16BE(64240, at + 14);
}

export function synPacket(source: string, target: string, port: number, seq: number): Buffer {
  const p = Buffer.alloc(40);
  p[0] = 0x45;
  p.writeUInt16BE(40, 2);
  p[8] = 64;
  p[9] = 6;
  source.split('.').forEach((b, i) => (p[12 + i] = Number(b)));
  target.split('.').forEach((b, i) => (p[16 + i] = Number(b)));
  synHeader(p, 20, port, seq);
  // TCP checksum over the pseudo-header (addresses, protocol, length) and the segment.
  const pseudo = Buffer.alloc(12);
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(20, 10);
  p.writeUInt16BE(raw.createChecksum(pseudo, { buffer: p, offset: 20, length: 20 }), 36);
  return p; // the kernel fills in the IP checksum (IP_HDRINCL)
}

export interface SynSender {
  send(packet: Buffer, target: string): Promise<void>;
  close(): void;
}

export function openSynSender(): SynSender {
  const socket = raw.createSocket({ protocol: raw.Protocol.TCP });
  socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  return {
    send: (packet, target) =>
      new Promise<void>((resolve, reject) => socket.send(packet, 0, packet.length, target, (err) => (err ? reject(err) : resolve()))),
    close: () => socket.close(),
  };
}

/** An IPv6 TCP SYN with its header, from any source (forged: the kernel sends it as built). */
export function synPacket6(source: string, target: string, port: number, seq: number): Buffer {
  const src = parseIp(source);
  const dst = parseIp(target);
  if (src?.family !== 6 || dst?.family !== 6) throw new Error(`not IPv6: ${source} -> ${target}`);
  const p = Buffer.alloc(60);
  p.writeUInt32BE(6 << 28, 0); // version 6
  p.writeUInt16BE(20, 4); // payload length
  p[6] = 6; // next header TCP
  p[7] = 64; // hop limit
  p.set(src.bytes, 8);
  p.set(dst.bytes, 24);
  synHeader(p, 40, port, seq);
  // Checksum over the pseudo-header (addresses, length, next header) and the segment.
  const pseudo = Buffer.alloc(40);
  p.copy(pseudo, 0, 8, 40);
  pseudo.writeUInt32BE(20, 32);
  pseudo[39] = 6;
  p.writeUInt16BE(raw.createChecksum(pseudo, { buffer: p, offset: 40, length: 20 }), 56);
  return p;
}

/** Sends IPv6 packets built whole; a link-local or multicast target names its interface (ff02::1%eth0). */
export function openSyn6Sender(): SynSender {
  const socket = raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: 255 });
  return {
    send: (packet, target) =>
      new Promise<void>((resolve, reject) => socket.send(packet, 0, packet.length, target, (err) => (err ? reject(err) : resolve()))),
    close: () => socket.close(),
  };
}
