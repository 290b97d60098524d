// Packet parsing for the stealth detectors: pure, total (never throws) and free of
// per-packet allocation. Bad packets are counted by reason and dropped.

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
const TCP_ECE = 0x40;
const TCP_CWR = 0x80;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Why a packet was dropped by the parser; each is a counter label. */
export const DROP_REASONS = [
  'truncated-ip',
  'bad-ip-version',
  'bad-ihl',
  'fragment',
  'ipv6-extension-header',
  'not-tcp-or-udp',
  'truncated-tcp',
  'bad-tcp-offset',
  'truncated-udp',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Filled in place by the parsers; one instance per detector, reused for every packet. */
export interface Parsed {
  protocol: number;
  /** Offset of the transport header in the buffer. */
  transport: number;
  /** IPv4 destination as an unsigned 32-bit integer (0 when the buffer had no IPv4 header). */
  destination4: number;
  sourcePort: number;
  destinationPort: number;
  /** TCP flag byte (0 for UDP). */
  flags: number;
}

export function newParsed(): Parsed {
  return { protocol: 0, transport: 0, destination4: 0, sourcePort: 0, destinationPort: 0, flags: 0 };
}

/**
 * An IPv4 packet with its header (what an AF_INET raw socket receives), `length` bytes
 * starting at `base` in `buf` (a batch buffer holds many packets).
 */
export function parseIPv4(buf: Uint8Array, length: number, out: Parsed, base = 0): DropReason | null {
  if (length < 20) return 'truncated-ip';
  const vihl = buf[base]!;
  if (vihl >> 4 !== 4) return 'bad-ip-version';
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) return 'bad-ihl';
  if (length < ihl) return 'truncated-ip';
  // Any fragment but the first has no transport header; the first is judged by its header.
  if (((buf[base + 6]! & 0x1f) << 8) | buf[base + 7]!) return 'fragment';
  out.protocol = buf[base + 9]!;
  out.destination4 =
    ((buf[base + 16]! << 24) | (buf[base + 17]! << 16) | (buf[base + 18]! << 8) | buf[base + 19]!) >>> 0;
  return parseTransport(buf, length, ihl, out, base);
}

/** An IPv6 packet with its fixed header; extension headers are counted, not followed. */
export function parseIPv6(buf: Uint8Array, length: number, out: Parsed, base = 0): DropReason | null {
  if (length < 40) return 'truncated-ip';
  if (buf[base]! >> 4 !== 6) return 'bad-ip-version';
  const next = buf[base + 6]!;
  out.destination4 = 0;
  if (next === 0 || next === 43 || next === 44 || next === 60 || next === 51 || next === 50 || next === 135)
    return next === 44 ? 'fragment' : 'ipv6-extension-header';
  out.protocol = next;
  return parseTransport(buf, length, 40, out, base);
}

/**
 * The transport header at `offset` into the packet, as an AF_INET6 raw socket delivers it
 * at offset 0 (the kernel strips the IPv6 header and any extension headers first).
 */
export function parseTransport(buf: Uint8Array, length: number, offset: number, out: Parsed, base = 0): DropReason | null {
  out.transport = offset;
  const at = base + offset;
  if (out.protocol === IPPROTO_TCP) {
    if (length < offset + 14) return 'truncated-tcp';
    const dataOffset = (buf[at + 12]! >> 4) * 4;
    if (dataOffset < 20) return 'bad-tcp-offset';
    out.flags = buf[at + 13]!;
  } else if (out.protocol === IPPROTO_UDP) {
    if (length < offset + 8) return 'truncated-udp';
    out.flags = 0;
  } else return 'not-tcp-or-udp';
  out.sourcePort = (buf[at]! << 8) | buf[at + 1]!;
  out.destinationPort = (buf[at + 2]! << 8) | buf[at + 3]!;
  return null;
}

export type TcpProbeType = 'syn' | 'fin' | 'null' | 'xmas' | 'oddball';

/**
 * What a TCP flag set says about the sender. Packets with ACK or RST are replies or part of
 * a connection, never probes (null). ECN bits are ignored: a SYN with ECE+CWR is a normal
 * ECN-capable connection attempt.
 */
export function classifyTcp(flags: number): TcpProbeType | null {
  if (flags & (TCP_ACK | TCP_RST)) return null;
  const f = flags & ~(TCP_ECE | TCP_CWR);
  if (f === TCP_SYN) return 'syn';
  if (f === TCP_FIN) return 'fin';
  if (f === 0) return 'null';
  if (f === (TCP_FIN | TCP_PSH | TCP_URG)) return 'xmas';
  return 'oddball';
}

const LETTERS = 'FSRPAUEC';
/** Flag letters for every flag byte, computed once (no string building per packet). */
export const FLAG_NAMES: readonly string[] = Array.from({ length: 256 }, (_, byte) => {
  let s = '';
  for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) s += LETTERS[bit];
  return s || 'none';
});
