// nftables set elements as netlink carries them, both ways: a target as the elements of an
// interval set (a start, and the first address past the end flagged as an end), and the
// elements of a set dump (NFT_MSG_GETSETELEM) back as firewall entries, an interval set's
// starts and ends joined into the networks they bound. Pure: bytes in, values out.
import { addressAt, isNetwork, type AddressOrNetwork } from '../../net/address.js';
import { isV4MappedAt, type Family } from '../../net/ip.js';
import type { FirewallEntry } from './firewall.js';

// linux/netfilter/nf_tables.h; attribute headers in host order, values big-endian.
export const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
export const NFTA_LIST_ELEM = 1;
export const NFTA_SET_ELEM_KEY = 1;
export const NFTA_SET_ELEM_FLAGS = 3;
export const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_EXPIRATION = 5;
export const NFTA_SET_ELEM_USERDATA = 6;
export const NFTA_DATA_VALUE = 1;
export const NFT_SET_ELEM_INTERVAL_END = 1;
/** nftnl's element user data: type-length-value, the comment NUL-terminated. */
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
/** Its flags (a 32-bit word in host order): an interval open at the top has no end element. */
const NFTNL_UDATA_SET_ELEM_FLAGS = 1;
const NFTNL_SET_ELEM_F_INTERVAL_OPEN = 1;

/** An element comment as nft stores it in the element's user data. */
export const commentUserData = (text: string): Buffer => Buffer.concat([Buffer.from([NFTNL_UDATA_SET_ELEM_COMMENT, text.length + 1]), Buffer.from(`${text}\0`)]);
/** What nft attaches to an interval open at the top, so it (and `elementsIn`) lists it right. */
export const OPEN_INTERVAL_USER_DATA = Buffer.concat([Buffer.from([NFTNL_UDATA_SET_ELEM_FLAGS, 4]), Buffer.from(new Uint32Array([NFTNL_SET_ELEM_F_INTERVAL_OPEN]).buffer)]);
const NFGENMSG = 4;
const ATTR_TYPE_MASK = 0x3fff;

/**
 * An address (end undefined) or a network as interval-set elements: the start, and the
 * first address past the end (flagged as an end), as nft sends them; null end when the
 * range reaches the top.
 */
export function elementsOf(target: AddressOrNetwork): { start: Uint8Array; end?: Uint8Array | null } {
  if (!isNetwork(target)) return { start: target.bytes };
  const max = target.family === 4 ? 32 : 128;
  const end = Uint8Array.from(target.bytes);
  for (let bit = target.prefix; bit < max; bit++) end[bit >> 3]! |= 0x80 >> (bit & 7);
  for (let i = end.length - 1; i >= 0; i--) {
    end[i] = (end[i]! + 1) & 0xff;
    if (end[i] !== 0) return { start: target.bytes, end };
  }
  return { start: target.bytes, end: null };
}

/** One element of a dump, as `elementsIn` hands it over (the object is reused: copy what is kept). */
export interface DumpedElement {
  data: Buffer;
  keyAt: number;
  keyLength: number;
  /** An interval's end (NFT_SET_ELEM_INTERVAL_END). */
  end: boolean;
  /** Milliseconds before the kernel drops it; undefined without a timeout. */
  expiresMs: number | undefined;
  /** The element's comment (who added it), when it has one. */
  tag: string | undefined;
  /** An interval that reaches the top (its user data says so): no end element follows. */
  open: boolean;
}

/**
 * Hands each element of one NFT_MSG_NEWSETELEM dump message (its payload from `from` to
 * `to`, past the netlink header) to `visit`. Attributes that overrun their parent end the
 * walk of that parent: the kernel never sends them, and nothing past one can be trusted.
 */
export function elementsIn(data: Buffer, from: number, to: number, visit: (e: DumpedElement) => void, littleEndian = true): void {
  const u16 = (at: number) => (littleEndian ? data.readUInt16LE(at) : data.readUInt16BE(at));
  const e: DumpedElement = { data, keyAt: 0, keyLength: 0, end: false, expiresMs: undefined, tag: undefined, open: false };
  for (let at = from + NFGENMSG; at + 4 <= to; ) {
    const length = u16(at);
    if (length < 4 || at + length > to) return;
    if ((u16(at + 2) & ATTR_TYPE_MASK) === NFTA_SET_ELEM_LIST_ELEMENTS) {
      for (let el = at + 4; el + 4 <= at + length; ) {
        const elLength = u16(el);
        if (elLength < 4 || el + elLength > at + length) break;
        e.keyLength = 0;
        e.end = false;
        e.expiresMs = undefined;
        e.tag = undefined;
        e.open = false;
        for (let a = el + 4; a + 4 <= el + elLength; ) {
          const aLength = u16(a);
          if (aLength < 4 || a + aLength > el + elLength) break;
          const type = u16(a + 2) & ATTR_TYPE_MASK;
          const value = a + 4;
          const valueLength = aLength - 4;
          if (type === NFTA_SET_ELEM_KEY && valueLength >= 4 && (u16(value + 2) & ATTR_TYPE_MASK) === NFTA_DATA_VALUE) {
            const keyLength = Math.min(u16(value), valueLength) - 4;
            if (keyLength === 4 || keyLength === 16) [e.keyAt, e.keyLength] = [value + 4, keyLength];
          } else if (type === NFTA_SET_ELEM_FLAGS && valueLength >= 4) e.end = (data.readUInt32BE(value) & NFT_SET_ELEM_INTERVAL_END) !== 0;
          else if (type === NFTA_SET_ELEM_EXPIRATION && valueLength >= 8) e.expiresMs = data.readUInt32BE(value) * 2 ** 32 + data.readUInt32BE(value + 4);
          else if (type === NFTA_SET_ELEM_USERDATA) [e.tag, e.open] = userData(data, value, value + valueLength, littleEndian);
          a += (aLength + 3) & ~3;
        }
        if (e.keyLength) visit(e);
        el += (elLength + 3) & ~3;
      }
    }
    at += (length + 3) & ~3;
  }
}

/** The comment and the open-interval flag among an element's user data TLVs. */
function userData(data: Buffer, from: number, to: number, littleEndian: boolean): [string | undefined, boolean] {
  let tag: string | undefined;
  let open = false;
  for (let at = from; at + 2 <= to; at += 2 + data[at + 1]!) {
    const length = data[at + 1]!;
    if (at + 2 + length > to) break;
    if (data[at] === NFTNL_UDATA_SET_ELEM_COMMENT) tag = data.toString('latin1', at + 2, at + 2 + length).replace(/\0+$/, '') || undefined;
    else if (data[at] === NFTNL_UDATA_SET_ELEM_FLAGS && length === 4)
      open = ((littleEndian ? data.readUInt32LE(at + 2) : data.readUInt32BE(at + 2)) & NFTNL_SET_ELEM_F_INTERVAL_OPEN) !== 0;
  }
  return [tag, open];
}

const entryOf = (target: AddressOrNetwork, e: { expiresMs: number | undefined; tag: string | undefined }): FirewallEntry => ({
  target,
  ...(e.expiresMs !== undefined ? { expiresInSeconds: e.expiresMs / 1000 } : {}),
  ...(e.tag ? { tag: e.tag } : {}),
});

/** A host set's element as an entry (one address). */
export function hostEntry(e: DumpedElement, family: Family): FirewallEntry | null {
  if (e.keyLength !== (family === 4 ? 4 : 16)) return null;
  // Read as IPv4, it would be looked for (and removed) in the IPv4 set.
  if (family === 6 && isV4MappedAt(e.data, e.keyAt)) return null;
  return entryOf(addressAt(e.data, e.keyAt, family), e);
}

/** An interval set's elements, kept while a dump runs, for `networkEntries`. */
export interface IntervalElement {
  key: Uint8Array;
  end: boolean;
  open: boolean;
  expiresMs: number | undefined;
  tag: string | undefined;
}

export const intervalElement = (e: DumpedElement): IntervalElement => ({
  key: Uint8Array.from(e.data.subarray(e.keyAt, e.keyAt + e.keyLength)),
  end: e.end,
  open: e.open,
  expiresMs: e.expiresMs,
  tag: e.tag,
});

/**
 * An interval set's elements (in any order) as the networks they bound: each start joined
 * with the end that follows it; a start with none reaches the top only when its user data
 * says so (an end missing from the listing must not make a network of it). A range that is
 * no single network (the set's own merge of neighbours) is left out, as nothing here adds one.
 */
export function networkEntries(elements: IntervalElement[], family: Family): FirewallEntry[] {
  const width = family === 4 ? 4 : 16;
  const sorted = elements.filter((e) => e.key.length === width).sort((a, b) => Buffer.compare(a.key, b.key) || (a.end === b.end ? 0 : a.end ? -1 : 1));
  const out: FirewallEntry[] = [];
  let start: IntervalElement | undefined;
  const close = (end: Uint8Array | null) => {
    const target = start && (end !== null || start.open) && networkOf(start.key, end, family);
    if (target) out.push(entryOf(target, start!));
    start = undefined;
  };
  for (const e of sorted) {
    if (e.end) close(e.key);
    else {
      if (start) close(null);
      start = e;
    }
  }
  if (start) close(null);
  return out;
}

/** The network whose interval runs from `start` to before `end` (null: to the top), if there is one. */
function networkOf(start: Uint8Array, end: Uint8Array | null, family: Family): AddressOrNetwork | null {
  if (family === 6 && isV4MappedAt(start, 0)) return null; // nothing here adds one, and its text would read as IPv4
  const max = family === 4 ? 32 : 128;
  // The prefix is fixed by the lowest set bit of the start (or by the size, for 0.0.0.0).
  let prefix = max;
  while (prefix > 0 && !(start[(prefix - 1) >> 3]! & (0x80 >> ((prefix - 1) & 7)))) prefix--;
  for (let p = prefix; p <= max; p++) {
    const network = { text: '', family, bytes: start, prefix: p };
    const bounds = elementsOf(network);
    const sameEnd = bounds.end === null || bounds.end === undefined ? end === null : end !== null && Buffer.compare(bounds.end, end) === 0;
    if (!sameEnd) continue;
    if (p === max) return addressAt(start, 0, family);
    const text = `${addressAt(start, 0, family).text}/${p}`;
    return { text, family, bytes: Uint8Array.from(start), prefix: p };
  }
  return null;
}
