// Longest-prefix membership for IPv4 and IPv6 CIDR lists. A lookup walks at most 32 or
// 128 bits, whatever the number of entries.
import { parseCidr, parseIp, type Cidr } from './ip.js';

interface Node {
  zero?: Node;
  one?: Node;
  /** A listed prefix ends here. */
  terminal: boolean;
}

export class IpTrie {
  private readonly roots: Record<4 | 6, Node> = { 4: { terminal: false }, 6: { terminal: false } };
  private count = 0;

  constructor(cidrs: Iterable<string> = []) {
    for (const c of cidrs) this.add(c);
  }

  static of(cidrs: Iterable<Cidr>): IpTrie {
    const trie = new IpTrie();
    for (const c of cidrs) trie.addCidr(c);
    return trie;
  }

  get size(): number {
    return this.count;
  }

  /** Adds a CIDR or address; throws on text that is neither (validated input never is). */
  add(text: string): void {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`not a CIDR: ${text}`);
    this.addCidr(cidr);
  }

  addCidr(cidr: Cidr): void {
    let node = this.roots[cidr.family];
    for (let bit = 0; bit < cidr.prefix; bit++) {
      if (node.terminal) return; // a shorter prefix already covers it
      const one = ((cidr.bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1;
      node = one ? (node.one ??= { terminal: false }) : (node.zero ??= { terminal: false });
    }
    if (!node.terminal) this.count++;
    node.terminal = true;
  }

  hasBytes(bytes: Uint8Array): boolean {
    let node: Node | undefined = this.roots[bytes.length === 4 ? 4 : 6];
    const bits = bytes.length * 8;
    for (let bit = 0; node; bit++) {
      if (node.terminal) return true;
      if (bit === bits) return false;
      node = ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) === 1 ? node.one : node.zero;
    }
    return false;
  }

  /** True when the CIDR and some listed prefix share an address (either contains the other). */
  overlaps(cidr: Cidr): boolean {
    let node: Node | undefined = this.roots[cidr.family];
    for (let bit = 0; node; bit++) {
      if (node.terminal) return true;
      if (bit === cidr.prefix) return true; // entries below this node lie inside the CIDR
      node = ((cidr.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) === 1 ? node.one : node.zero;
    }
    return false;
  }

  has(address: string): boolean {
    const ip = parseIp(address);
    return ip ? this.hasBytes(ip.bytes) : false;
  }
}
