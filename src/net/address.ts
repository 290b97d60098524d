// An address as a probe carries it from the reader on: its bytes (4 or 16, IPv4-mapped IPv6
// already made IPv4), its family, and its canonical text, each made once.
import { formatCidr, formatIpAt, parseCidr, parseIp, type Family } from './ip.js';

export interface Address {
  readonly text: string;
  readonly family: Family;
  readonly bytes: Uint8Array;
}

/**
 * The address at `at` in a packet or record (4 or 16 bytes by family); the bytes are copied,
 * as the readers reuse their buffers (a Buffer's own slice() is a view, not a copy).
 */
export function addressAt(buf: Uint8Array, at: number, family: Family): Address {
  const text = formatIpAt(buf, at, family);
  if (family === 6 && !text.includes(':')) return { text, family: 4, bytes: copyOf(buf, at + 12, 4) };
  return { text, family, bytes: copyOf(buf, at, family === 4 ? 4 : 16) };
}

const copyOf = (buf: Uint8Array, at: number, length: number): Uint8Array => Uint8Array.from(buf.subarray(at, at + length));

/** Parses address text (a socket's peer, a test's source); null when it is none. */
export function addressOf(text: string): Address | null {
  const ip = parseIp(text);
  if (!ip) return null;
  return addressAt(ip.bytes, 0, ip.family);
}

/** A network a block takes whole: its bytes with the host bits clear, its prefix, and "address/prefix" as text. */
export interface Network extends Address {
  readonly prefix: number;
}

/** What a block targets: one address, or a network (a CIDR shorter than one address). */
export type AddressOrNetwork = Address | Network;

export const isNetwork = (target: AddressOrNetwork): target is Network => 'prefix' in target;

/** The prefix length of a target: a single address's is the whole width of its family. */
export const prefixOf = (target: AddressOrNetwork): number => (isNetwork(target) ? target.prefix : target.family === 4 ? 32 : 128);

/**
 * Parses an address or a CIDR where text comes in (an admin's command, a BlockedHost, the
 * block record, a kernel listing); a /32 or /128 is the address itself. Null when it is neither.
 */
export function addressOrNetworkOf(text: string): AddressOrNetwork | null {
  const cidr = parseCidr(text);
  if (!cidr) return null;
  if (cidr.prefix === (cidr.family === 4 ? 32 : 128)) return addressAt(cidr.bytes, 0, cidr.family);
  return { text: formatCidr(cidr), family: cidr.family, bytes: cidr.bytes, prefix: cidr.prefix };
}
