// Source addresses as 32-bit words for the tracker's index, from the bytes a probe carries
// (net/address.ts: parsed once, by the reader).
import { formatIpAt, type Family } from '../net/ip.js';

/** One address, reused: family 4 uses words[0]; family 6 all four, most significant first. */
export class AddressKey {
  family: Family = 4;
  readonly words = new Uint32Array(4);
  private readonly bytes = new Uint8Array(16);

  /** Loads 4 or 16 address bytes (an IPv4-mapped IPv6 address is IPv4 by then). */
  load(b: Uint8Array): void {
    const w = this.words;
    if (b.length === 4) {
      w[0] = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
      this.family = 4;
      return;
    }
    for (let k = 0; k < 4; k++) w[k] = (b[4 * k]! << 24) | (b[4 * k + 1]! << 16) | (b[4 * k + 2]! << 8) | b[4 * k + 3]!;
    this.family = 6;
  }

  /** Canonical text of an address held as words (as formatIp would write it). */
  format(family: Family, w0: number, w1: number, w2: number, w3: number): string {
    if (family === 4) return `${w0 >>> 24}.${(w0 >>> 16) & 255}.${(w0 >>> 8) & 255}.${w0 & 255}`;
    const b = this.bytes;
    const w = [w0, w1, w2, w3];
    for (let k = 0; k < 16; k++) b[k] = w[k >> 2]! >>> (24 - 8 * (k & 3));
    return formatIpAt(b, 0, 6);
  }
}
