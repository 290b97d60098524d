// Hand-made IPv4 TCP SYNs on a raw socket (IP_HDRINCL), for the load generators that run in
// the scanner namespace. raw-socket is a dev dependency: only benchmarks send packets.
import { createRequire } from 'node:module';

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

export function synPacket(source: string, target: string, port: number, seq: number): Buffer {
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
