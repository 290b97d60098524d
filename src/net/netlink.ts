// Netlink requests for the firewall backends' hot path (add and remove one address) and
// their set listings: messages are built here, sent through src/native/netlink.c, and their
// acks and dumps read back by sequence number. Setup and teardown stay with the nft/ipset tools.
import { endianness } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { loadAddon } from '../native/addon.js';

interface NativeSocket {
  send(message: Buffer): void;
  receive(timeoutMs: number): Buffer | null;
  close(): void;
}
const native = loadAddon<{
  open(protocol: number, onDatagram?: (datagram: Buffer | null) => void): NativeSocket;
}>('netlink');

export const NETLINK_NETFILTER = 12;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_DUMP = 0x300;
/** Set on a dump's messages when what it lists changed while it ran. */
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const HEADER = 16;

const LE = endianness() === 'LE';
const writeU32 = (b: Buffer, v: number, at: number) => (LE ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
const writeU16 = (b: Buffer, v: number, at: number) => (LE ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
const readU32 = (b: Buffer, at: number) => (LE ? b.readUInt32LE(at) : b.readUInt32BE(at));
const readU16 = (b: Buffer, at: number) => (LE ? b.readUInt16LE(at) : b.readUInt16BE(at));
const readI32 = (b: Buffer, at: number) => (LE ? b.readInt32LE(at) : b.readInt32BE(at));
const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: header, payload, padding to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(align4(4 + payload.length));
  writeU16(out, 4 + payload.length, 0);
  writeU16(out, type, 2);
  out.set(payload, 4);
  return out;
}
export const nest = (type: number, ...children: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(children));
export const cstring = (s: string): Buffer => Buffer.from(`${s}\0`);
export const u8 = (v: number): Buffer => Buffer.from([v]);
export function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}
export function u64be(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v))));
  return b;
}

/** A message before framing: the socket numbers it. */
export interface Part {
  type: number;
  flags: number;
  /** The family header (nfgenmsg for netfilter) and the attributes. */
  body: Buffer[];
}

/** The netfilter family header: family, version 0, resource id (big-endian). */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b[0] = family;
  b.writeUInt16BE(resId, 2);
  return b;
}

export class NetlinkError extends Error {
  constructor(
    readonly errno: number,
    readonly code: string,
    what: string,
    detail = '',
  ) {
    super(`${what}: ${code}${detail ? ` (${detail})` : ''}`);
    this.name = 'NetlinkError';
  }
}

export class NetlinkSocket {
  private readonly socket: NativeSocket;
  private seq = (Date.now() / 1000) >>> 0;
  /** The kernel's own words on the last failure, when it gave some (extended ack). */
  lastDetail = '';

  /** With `onDatagram`, what the kernel sends unasked (log messages) goes there, null for a loss. */
  constructor(protocol: number, onDatagram?: (datagram: Buffer | null) => void) {
    this.socket = native.open(protocol, onDatagram);
  }

  /**
   * Sends the parts as one datagram and waits for the acks of those that ask for one.
   * Returns an errno per part (0: fine); a part without NLM_F_ACK reports only failure.
   */
  request(parts: Part[], timeoutMs = 2000): number[] {
    const { datagram, seqs } = this.frame(parts);
    const errnos = parts.map(() => 0);
    const waiting = new Set(seqs.filter((_, i) => parts[i]!.flags & NLM_F_ACK));
    this.lastDetail = '';
    this.socket.send(datagram);
    const deadline = performance.now() + timeoutMs;
    let failed = false;
    while (waiting.size > 0) {
      // Once something failed the kernel stops the batch: take what is queued, then stop.
      const data = this.socket.receive(failed ? 0 : Math.max(0, Math.ceil(deadline - performance.now())));
      if (data === null) {
        if (failed) break;
        throw new NetlinkError(-1, 'ETIMEDOUT', 'netlink request', `no answer within ${timeoutMs} ms`);
      }
      for (let at = 0; at + HEADER <= data.length; ) {
        const length = readU32(data, at);
        if (length < HEADER || at + length > data.length) break;
        const index = seqs.indexOf(readU32(data, at + 8));
        if (index >= 0 && readU16(data, at + 4) === NLMSG_ERROR) {
          const errno = -readI32(data, at + HEADER);
          errnos[index] = errno;
          waiting.delete(seqs[index]!);
          if (errno !== 0) {
            failed = true;
            if (readU16(data, at + 6) & NLM_F_ACK_TLVS) this.lastDetail = ackMessage(data, at + HEADER + 4 + HEADER, at + length);
          }
        }
        at += align4(length);
      }
    }
    return errnos;
  }

  /**
   * One request, one answer (e.g. RTM_GETROUTE): `onAnswer` gets its payload; a kernel error
   * is thrown as a NetlinkError.
   */
  query(part: Part, onAnswer: (data: Buffer, from: number, to: number) => void, timeoutMs = 2000): void {
    this.exchange(part, 'netlink query', timeoutMs, (data, m) => {
      onAnswer(data, m.from, m.to);
      return true;
    });
  }

  /** A dump request: `onMessage` gets each answer's payload, until the kernel says done. */
  dump(part: Part, onMessage: (data: Buffer, from: number, to: number) => void, timeoutMs = 2000): void {
    this.exchange({ ...part, flags: part.flags | NLM_F_DUMP }, 'netlink dump', timeoutMs, (data, m) => {
      if (m.type === NLMSG_DONE) return true;
      onMessage(data, m.from, m.to);
      return false;
    });
  }

  /**
   * A dump read one datagram per turn of the event loop (a large set takes hundreds): other
   * work goes on between them. The socket must be the dump's alone while it runs, as any
   * other request on it would read the dump's messages as its own. Resolves false when the
   * kernel flagged the dump as interrupted (what it lists changed meanwhile, so parts may be
   * missing or doubled).
   */
  async dumpInTurns(part: Part, onMessage: (data: Buffer, from: number, to: number) => void, timeoutMs = 2000): Promise<boolean> {
    const { datagram, seqs } = this.frame([{ ...part, flags: part.flags | NLM_F_DUMP }]);
    this.socket.send(datagram);
    const deadline = performance.now() + timeoutMs;
    let consistent = true;
    for (;;) {
      const data = this.socket.receive(Math.max(0, Math.ceil(deadline - performance.now())));
      if (data === null) throw new NetlinkError(-1, 'ETIMEDOUT', 'netlink dump', `not done within ${timeoutMs} ms`);
      for (const m of messagesOf(data)) {
        if (m.seq !== seqs[0]) continue;
        if (m.flags & NLM_F_DUMP_INTR) consistent = false;
        if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) {
          const errno = m.to - m.from >= 4 ? -readI32(data, m.from) : 0;
          if (errno > 0) throw new NetlinkError(errno, errnoName(errno), 'netlink dump');
          if (m.type === NLMSG_DONE) return consistent;
          continue;
        }
        onMessage(data, m.from, m.to);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Sends one request and hands its answers to `onMessage` until it says done; errors are thrown. */
  private exchange(part: Part, what: string, timeoutMs: number, onMessage: (data: Buffer, m: { type: number; from: number; to: number }) => boolean): void {
    const { datagram, seqs } = this.frame([part]);
    this.socket.send(datagram);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // The kernel makes the next part of a dump as the previous one is read.
      const data = this.socket.receive(Math.max(0, Math.ceil(deadline - performance.now())));
      if (data === null) throw new NetlinkError(-1, 'ETIMEDOUT', what, `not done within ${timeoutMs} ms`);
      for (const m of messagesOf(data)) {
        if (m.seq !== seqs[0]) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = m.to - m.from >= 4 ? -readI32(data, m.from) : 0;
          if (errno !== 0) throw new NetlinkError(errno, errnoName(errno), what);
          continue;
        }
        if (onMessage(data, m)) return;
      }
    }
  }

  private frame(parts: Part[]): { datagram: Buffer; seqs: number[] } {
    const seqs: number[] = [];
    const frames = parts.map((p) => {
      const body = Buffer.concat(p.body);
      const frame = Buffer.alloc(HEADER + align4(body.length));
      const seq = (this.seq = (this.seq + 1) >>> 0);
      seqs.push(seq);
      writeU32(frame, HEADER + body.length, 0);
      writeU16(frame, p.type, 4);
      writeU16(frame, p.flags | NLM_F_REQUEST, 6);
      writeU32(frame, seq, 8);
      body.copy(frame, HEADER);
      return frame;
    });
    return { datagram: Buffer.concat(frames), seqs };
  }

  close(): void {
    this.socket.close();
  }
}

/** NLMSGERR_ATTR_MSG from an extended ack's attributes (after the echoed request header). */
function ackMessage(data: Buffer, from: number, to: number): string {
  for (let at = from; at + 4 <= to; ) {
    const length = readU16(data, at);
    if (length < 4) break;
    if ((readU16(data, at + 2) & 0x3fff) === NLMSGERR_ATTR_MSG)
      return data.toString('utf8', at + 4, at + length).replace(/\0+$/, '');
    at += align4(length);
  }
  return '';
}

export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** The messages of a datagram: type, flags and where each one's payload starts and ends. */
export function* messagesOf(data: Buffer): Generator<{ type: number; flags: number; seq: number; from: number; to: number }> {
  for (let at = 0; at + HEADER <= data.length; ) {
    const length = readU32(data, at);
    if (length < HEADER || at + length > data.length) return;
    yield { type: readU16(data, at + 4), flags: readU16(data, at + 6), seq: readU32(data, at + 8), from: at + HEADER, to: at + length };
    at += align4(length);
  }
}

/** Attributes between `from` and `to`, as type (flag bits cleared) -> [payload start, end]. */
export function attributesOf(data: Buffer, from: number, to: number): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  for (let at = from; at + 4 <= to; ) {
    const length = readU16(data, at);
    if (length < 4 || at + length > to) break;
    out.set(readU16(data, at + 2) & 0x3fff, [at + 4, at + length]);
    at += align4(length);
  }
  return out;
}
