// An address as a probe carries it from the reader on: its bytes (4 or 16, IPv4-mapped IPv6
// already made IPv4), its family, and its canonical text, each made once.
import { formatIpAt, parseIp, type Family } from './ip.js';

export interface Address {
  readonly text: string;
  readonly family: Family;
  readonly bytes: Uint8Array;
}

/** The address at `at` in a packet or record (4 or 16 bytes by family); the bytes are copied. */
export function addressAt(buf: Uint8Array, at: number, family: Family): Address {
  const text = formatIpAt(buf, at, family);
  if (family === 6 && !text.includes(':')) return { text, family: 4, bytes: buf.slice(at + 12, at + 16) };
  return { text, family, bytes: buf.slice(at, at + (family === 4 ? 4 : 16)) };
}

/** Parses address text (a socket's peer, a test's source); null when it is none. */
export function addressOf(text: string): Address | null {
  const ip = parseIp(text);
  if (!ip) return null;
  return addressAt(ip.bytes, 0, ip.family);
}
