// Source addresses as 32-bit words for the tracker's index. Detectors hand over canonical
// text, so the usual forms are parsed here character by character with no allocation (this
// runs for every probe); anything else goes through net/ip.ts.
import { formatIpAt, parseIp, type Family } from '../net/ip.js';

/** One parsed address, reused: family 4 uses words[0]; family 6 all four, most significant first. */
export class AddressKey {
  family: Family = 4;
  readonly words = new Uint32Array(4);
  private readonly groups = new Uint16Array(8);
  private readonly bytes = new Uint8Array(16);
  private readonly bytes4 = new Uint8Array(4);
  /** The text parsed last: a source probing again is not parsed again. */
  private text: string | undefined;

  /** Parses `text` (IPv4-mapped IPv6 becomes IPv4); throws when it is not an address. */
  parse(text: string): void {
    if (text === this.text) return;
    this.text = undefined;
    if (!this.parseV4(text) && !this.parseV6(text)) this.parseOther(text);
    this.text = text;
  }

  /** Dotted quad without leading zeros. */
  private parseV4(s: string): boolean {
    const n = s.length;
    if (n < 7 || n > 15) return false;
    let word = 0;
    let parts = 0;
    let value = 0;
    let digits = 0;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 46) {
        if (digits === 0 || parts === 3) return false;
        word = (word << 8) | value;
        parts++;
        value = 0;
        digits = 0;
        continue;
      }
      const d = c - 48;
      if (d < 0 || d > 9 || (digits === 1 && value === 0)) return false;
      value = value * 10 + d;
      if (value > 255) return false;
      digits++;
    }
    if (digits === 0 || parts !== 3) return false;
    this.words[0] = (word << 8) | value;
    this.family = 4;
    return true;
  }

  /** Hex groups with at most one "::"; an embedded dotted quad or a zone is left to parseOther. */
  private parseV6(s: string): boolean {
    const n = s.length;
    if (n < 2 || n > 39) return false;
    const g = this.groups;
    let count = 0;
    let gap = -1;
    let i = 0;
    if (s.charCodeAt(0) === 58) {
      if (s.charCodeAt(1) !== 58) return false;
      gap = 0;
      i = 2;
    }
    while (i < n) {
      let value = 0;
      let digits = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
        if (d < 0) break;
        value = (value << 4) | d;
        digits++;
      }
      if (digits === 0 || digits > 4 || count === 8) return false;
      g[count++] = value;
      if (i === n) break;
      if (s.charCodeAt(i) !== 58) return false;
      i++;
      if (i === n) return false;
      if (s.charCodeAt(i) === 58) {
        if (gap >= 0) return false;
        gap = count;
        i++;
      }
    }
    if (gap < 0 ? count !== 8 : count > 7) return false;
    if (gap >= 0) {
      // Slide the groups after "::" to the end (from the last, so nothing is overwritten).
      const tail = count - gap;
      for (let k = 0; k < tail; k++) g[7 - k] = g[count - 1 - k]!;
      for (let k = gap; k < 8 - tail; k++) g[k] = 0;
    }
    this.setV6Groups();
    return true;
  }

  private setV6Groups(): void {
    const g = this.groups;
    const w = this.words;
    for (let k = 0; k < 4; k++) w[k] = (g[2 * k]! << 16) | g[2 * k + 1]!;
    if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
      w[0] = w[3]!;
      this.family = 4;
    } else this.family = 6;
  }

  private parseOther(text: string): void {
    const ip = parseIp(text);
    if (!ip) throw new Error(`source tracker: probe source ${JSON.stringify(text)} is not an IP address`);
    const b = ip.bytes;
    const w = this.words;
    if (ip.family === 4) {
      w[0] = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
      this.family = 4;
      return;
    }
    for (let k = 0; k < 8; k++) this.groups[k] = (b[2 * k]! << 8) | b[2 * k + 1]!;
    this.setV6Groups();
  }

  /** The parsed address as 4 or 16 bytes (as parseIp gives them), in a buffer reused by the next call. */
  parsedBytes(): Uint8Array {
    const w = this.words;
    if (this.family === 4) return this.bytesOf(w[0]!, 0, 0, 0, 4);
    return this.bytesOf(w[0]!, w[1]!, w[2]!, w[3]!, 16);
  }

  private bytesOf(w0: number, w1: number, w2: number, w3: number, length: 4 | 16): Uint8Array {
    const b = length === 4 ? this.bytes4 : this.bytes;
    const w = [w0, w1, w2, w3];
    for (let k = 0; k < length; k++) b[k] = w[k >> 2]! >>> (24 - 8 * (k & 3));
    return b;
  }

  /** Canonical text of an address held as words (as formatIp would write it). */
  format(family: Family, w0: number, w1: number, w2: number, w3: number): string {
    if (family === 4) return `${w0 >>> 24}.${(w0 >>> 16) & 255}.${(w0 >>> 8) & 255}.${w0 & 255}`;
    return formatIpAt(this.bytesOf(w0, w1, w2, w3, 16), 0, 6);
  }
}
