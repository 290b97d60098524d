// IpTrie figures: lookup cost against ignore lists of growing length, IPv4 and IPv6, with a
// linear scan over 1,000 entries as the contrast. Lookup time should not follow list length.
import { IpTrie } from '../src/net/ip-trie.js';
import { formatCidr, formatIp, type Cidr, type Family } from '../src/net/ip.js';
import { measure, progress, prng, type Figure, type MeasureOptions } from './harness.js';

/** The size the linear-scan baseline runs at (its lookups are those of the trie of this size). */
const LINEAR_SIZE = 1000;

/** Random CIDRs: IPv4 /16 to /32, IPv6 /32 to /128, host bits cleared. */
function randomCidrs(family: Family, count: number, rand: () => number): Cidr[] {
  const len = family === 4 ? 4 : 16;
  const [minPrefix, maxPrefix] = family === 4 ? [16, 32] : [32, 128];
  const out: Cidr[] = [];
  for (let n = 0; n < count; n++) {
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) bytes[i] = Math.floor(rand() * 256);
    if (family === 6 && bytes[0] === 0) bytes[0] = 0x20; // keep clear of ::/8 (v4-mapped, v4-compatible)
    const prefix = minPrefix + Math.floor(rand() * (maxPrefix - minPrefix + 1));
    for (let bit = prefix; bit < len * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
    out.push({ family, bytes, prefix });
  }
  return out;
}

/** Half the lookups fall inside a listed CIDR (random host bits), half are random addresses. */
function lookupAddresses(family: Family, list: readonly Cidr[], count: number, rand: () => number): Uint8Array[] {
  const len = family === 4 ? 4 : 16;
  const out: Uint8Array[] = [];
  for (let n = 0; n < count; n++) {
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) bytes[i] = Math.floor(rand() * 256);
    if (family === 6 && bytes[0] === 0) bytes[0] = 0x20;
    if (n % 2 === 0) {
      const c = list[Math.floor(rand() * list.length)]!;
      for (let bit = 0; bit < c.prefix; bit++) {
        const mask = 0x80 >> (bit & 7);
        bytes[bit >> 3] = (bytes[bit >> 3]! & ~mask) | (c.bytes[bit >> 3]! & mask);
      }
    }
    out.push(bytes);
  }
  return out;
}

/** The contrast: every entry tried in turn, as (address & mask) === network over 32-bit words. */
class LinearList {
  private readonly words: number;
  private readonly net: Uint32Array;
  private readonly mask: Uint32Array;
  private readonly addr: Uint32Array;

  constructor(cidrs: readonly Cidr[], family: Family) {
    this.words = family === 4 ? 1 : 4;
    this.net = new Uint32Array(cidrs.length * this.words);
    this.mask = new Uint32Array(cidrs.length * this.words);
    this.addr = new Uint32Array(this.words);
    cidrs.forEach((c, e) => {
      for (let w = 0; w < this.words; w++) {
        const bitsHere = Math.min(32, Math.max(0, c.prefix - w * 32));
        this.mask[e * this.words + w] = bitsHere === 0 ? 0 : (0xffffffff << (32 - bitsHere)) >>> 0;
        this.net[e * this.words + w] = word(c.bytes, w);
      }
    });
  }

  has(bytes: Uint8Array): boolean {
    const W = this.words;
    if (W === 1) {
      const a = word(bytes, 0);
      for (let e = 0; e < this.net.length; e++) if (((a & this.mask[e]!) >>> 0) === this.net[e]) return true;
      return false;
    }
    for (let w = 0; w < W; w++) this.addr[w] = word(bytes, w);
    outer: for (let e = 0; e < this.net.length; e += W) {
      for (let w = 0; w < W; w++) if (((this.addr[w]! & this.mask[e + w]!) >>> 0) !== this.net[e + w]) continue outer;
      return true;
    }
    return false;
  }
}

function word(bytes: Uint8Array, w: number): number {
  const i = w * 4;
  return ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
}

/**
 * Diagnostic, untimed: the bits a lookup walks on average, which is what grows with the list
 * (bounded by 32 or 128). Reads the trie's private roots; undefined if their shape changes.
 */
function meanBitsWalked(trie: IpTrie, addrs: readonly Uint8Array[]): number | undefined {
  interface TrieNode {
    zero?: TrieNode;
    one?: TrieNode;
    terminal: boolean;
  }
  const roots = (trie as unknown as { roots?: Record<4 | 6, TrieNode | undefined> }).roots;
  if (!roots || addrs.length === 0) return undefined;
  let total = 0;
  for (const bytes of addrs) {
    let node = roots[bytes.length === 4 ? 4 : 6];
    if (!node || typeof node.terminal !== 'boolean') return undefined;
    for (let bit = 0; node && !node.terminal && bit < bytes.length * 8; bit++) {
      total++;
      node = ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) === 1 ? node.one : node.zero;
    }
  }
  return total / addrs.length;
}

let hits = 0;

function lookupBytes(trie: { hasBytes(b: Uint8Array): boolean }, addrs: readonly Uint8Array[]): number {
  let h = 0;
  for (let i = 0; i < addrs.length; i++) if (trie.hasBytes(addrs[i]!)) h++;
  hits = h;
  return addrs.length;
}

function lookupText(trie: IpTrie, addrs: readonly string[]): number {
  let h = 0;
  for (let i = 0; i < addrs.length; i++) if (trie.has(addrs[i]!)) h++;
  hits = h;
  return addrs.length;
}

function lookupLinear(list: LinearList, addrs: readonly Uint8Array[]): number {
  let h = 0;
  for (let i = 0; i < addrs.length; i++) if (list.has(addrs[i]!)) h++;
  hits = h;
  return addrs.length;
}

export interface TrieSizes {
  /** List lengths; the first and last are compared. */
  listSizes: readonly number[];
  /** Prebuilt lookup addresses per list. */
  lookups: number;
}

export function trieBench(sizes: TrieSizes, opts: MeasureOptions): Figure[] {
  const figures: Figure[] = [];
  const first = sizes.listSizes[0]!;
  const last = sizes.listSizes[sizes.listSizes.length - 1]!;
  for (const family of [4, 6] as const) {
    const v = `IPv${family}`;
    const rand = prng(0x5eed + family);
    const perSize = new Map<number, { text: number; bytes: number; bits?: number }>();
    const linearId = `trie.${v}.linear${LINEAR_SIZE}.lookupsPerSec`;
    const linearLabel = `linear ${LINEAR_SIZE.toLocaleString('en-US')}`;
    let linearNs = NaN;
    const rows: Figure[] = [];

    // Every list and lookup set is built, and every trie walked, before anything is timed:
    // the first list measured must not run with call sites that have seen fewer node shapes.
    const cases = sizes.listSizes.map((size) => {
      const cidrs = randomCidrs(family, size, rand);
      const texts = cidrs.map(formatCidr);
      const t0 = process.hrtime.bigint();
      const trie = new IpTrie(texts);
      const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const addrs = lookupAddresses(family, cidrs, sizes.lookups, rand);
      return { size, cidrs, trie, buildMs, addrs, addrTexts: addrs.map(formatIp) };
    });
    for (const c of cases) {
      lookupBytes(c.trie, c.addrs);
      lookupText(c.trie, c.addrTexts);
    }

    for (const { size, cidrs, trie, buildMs, addrs, addrTexts } of cases) {
      const s = size.toLocaleString('en-US');
      progress(`IpTrie ${v}: ${s} CIDRs, ${addrs.length.toLocaleString('en-US')} prebuilt lookups`);

      if (size === LINEAR_SIZE) {
        const linear = new LinearList(cidrs, family);
        const m = measure(() => lookupLinear(linear, addrs), opts);
        linearNs = m.nsPerOp;
        rows.push({
          id: linearId,
          name: `  baseline linear scan ${v}, ${s} CIDRs`,
          value: 1e9 / m.nsPerOp,
          unit: 'lookups/s',
          samples: m.samplesNsPerOp.map((ns) => 1e9 / ns),
          extra: { nsPerLookup: m.nsPerOp, entries: size, hitFraction: hits / addrs.length },
        });
      }

      const mb = measure(() => lookupBytes(trie, addrs), opts);
      const bytesHits = hits / addrs.length;
      const mt = measure(() => lookupText(trie, addrTexts), opts);
      const depth = meanBitsWalked(trie, addrs);
      perSize.set(size, { text: mt.nsPerOp, bytes: mb.nsPerOp, bits: depth });
      const extra: Record<string, number> = { entries: size, distinctPrefixes: trie.size, buildMs, hitFraction: bytesHits };
      if (depth !== undefined) extra.meanBitsWalked = depth;
      rows.push(
        {
          id: `trie.${v}.n${size}.hasBytes.lookupsPerSec`,
          name: `IpTrie.hasBytes ${v}, ${s} CIDRs`,
          value: 1e9 / mb.nsPerOp,
          unit: 'lookups/s',
          samples: mb.samplesNsPerOp.map((ns) => 1e9 / ns),
          extra: { ...extra, nsPerLookup: mb.nsPerOp },
        },
        {
          id: `trie.${v}.n${size}.has.lookupsPerSec`,
          name: `IpTrie.has (parses text) ${v}, ${s} CIDRs`,
          value: 1e9 / mt.nsPerOp,
          unit: 'lookups/s',
          samples: mt.samplesNsPerOp.map((ns) => 1e9 / ns),
          extra: { ...extra, nsPerLookup: mt.nsPerOp },
        },
      );
    }

    // The linear baseline is measured inside the loop; the ratios are filled in once it is known.
    for (const f of rows)
      if (f.id !== linearId && Number.isFinite(linearNs)) {
        f.baseline = linearLabel;
        f.baselineId = linearId;
        f.ratio = f.value / (1e9 / linearNs);
      }
    figures.push(...rows);

    const a = perSize.get(first)!;
    const b = perSize.get(last)!;
    for (const method of ['bytes', 'text'] as const) {
      const name = method === 'bytes' ? 'hasBytes' : 'has';
      figures.push({
        id: `trie.${v}.${name}.costRatio.n${last}.n${first}`,
        name: `IpTrie.${name} ${v}: cost at ${last.toLocaleString('en-US')} / cost at ${first.toLocaleString('en-US')}`,
        value: b[method] / a[method],
        unit: 'x',
        extra: { nsPerLookupFirst: a[method], nsPerLookupLast: b[method], first, last },
      });
    }
    // What the walk length alone would predict: a cost ratio well above this one is memory, not steps.
    if (a.bits !== undefined && b.bits !== undefined)
      figures.push({
        id: `trie.${v}.bitsWalkedRatio.n${last}.n${first}`,
        name: `IpTrie ${v}: bits walked at ${last.toLocaleString('en-US')} / at ${first.toLocaleString('en-US')}`,
        value: b.bits / a.bits,
        unit: 'x',
        extra: { meanBitsWalkedFirst: a.bits, meanBitsWalkedLast: b.bits, first, last },
      });
  }
  return figures;
}
