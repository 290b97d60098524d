// This host's own unicast addresses, as the detectors ask about a packet's destination: a
// packet sent to a broadcast or multicast address (or routed through the host) reaches every
// host it passes or is meant for, so it is no probe of this one.
import { parseIp } from '../net/ip.js';

export class LocalAddresses {
  private readonly v4 = new Set<number>();
  private readonly v6: Buffer[] = [];

  constructor(addresses: readonly string[]) {
    for (const text of addresses) {
      const ip = parseIp(text);
      if (ip?.family === 4) this.v4.add(((ip.bytes[0]! << 24) | (ip.bytes[1]! << 16) | (ip.bytes[2]! << 8) | ip.bytes[3]!) >>> 0);
      else if (ip) this.v6.push(Buffer.from(ip.bytes));
    }
  }

  /** An IPv4 address as an unsigned 32-bit number (the raw reader's records). */
  has4(address: number): boolean {
    return this.v4.has(address);
  }

  /** The 16 bytes of an IPv6 address at `at`. */
  has6(bytes: Buffer, at: number): boolean {
    return this.v6.some((a) => bytes.compare(a, 0, 16, at, at + 16) === 0);
  }

  /** An address as text, in any form parseIp takes (IPv4-mapped IPv6 is the IPv4 address). */
  has(text: string): boolean {
    const ip = parseIp(text);
    if (!ip) return false;
    if (ip.family === 6) return this.has6(Buffer.from(ip.bytes), 0);
    return this.has4(((ip.bytes[0]! << 24) | (ip.bytes[1]! << 16) | (ip.bytes[2]! << 8) | ip.bytes[3]!) >>> 0);
  }
}
