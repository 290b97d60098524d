// Per-source scan state, bounded: at most `capacity` sources (the least recently seen is
// dropped first) and each forgets probes older than the trigger window.
//
// Built for a million sources in tens of megabytes: every source is an index into typed
// arrays (no object per source), found through an open-addressing table keyed by its
// address words, kept in a recency list linked by index. A source's only probe sits in
// its flags word (its time is the source's last-seen time); more go to a bounded probe
// pool, and when that pool is full the least recently seen sources are dropped to make room.
import { PROBE_TYPES, type Probe, type ProbeType } from './probe.js';
import type { Address } from '../net/address.js';
import { AddressKey } from './address-key.js';
import { MAX_ORDER, MIN_ORDER, ProbePool } from './probe-pool.js';

/** Ports recorded per source (the most a pool segment holds); the trigger counts these. */
export const MAX_RECORDED_PROBES = 1 << MAX_ORDER;

/** A copy of one source's state, made on demand (reports, logs, tests). */
export interface SourceState {
  /** Canonical address text. */
  source: string;
  firstSeen: number;
  lastSeen: number;
  /** Distinct probes ("tcp/79") in the window, oldest first, with the time last seen. */
  probes: Map<string, number>;
  types: Set<ProbeType>;
  /** Every probe from the source while tracked, repeats included (saturates at 2^32 - 1). */
  total: number;
  /** It has triggered a response or alert (reset when it is forgotten). */
  triggered: boolean;
}

// The flags word of a source.
const PROBE_MASK = 0x1ffff; // its only probe while it has one: port, and UDP_BIT
const UDP_BIT = 0x10000;
const TYPE_SHIFT = 17; // seven bits, one per probe type
const TRIGGERED = 1 << 24;
const V6 = 1 << 25;
const CHECKED = 1 << 26;
const ORDER_SHIFT = 27; // four bits: the order of its pool segment, 0 while it has none
const RATE_LIMITED = 0x80000000; // its block was refused by the rate limit in this window

const TYPES = PROBE_TYPES;
function typeBit(type: ProbeType): number {
  switch (type) {
    case 'connect': return 1 << TYPE_SHIFT;
    case 'udp': return 2 << TYPE_SHIFT;
    case 'syn': return 4 << TYPE_SHIFT;
    case 'fin': return 8 << TYPE_SHIFT;
    case 'null': return 16 << TYPE_SHIFT;
    case 'xmas': return 32 << TYPE_SHIFT;
    default: return 64 << TYPE_SHIFT;
  }
}

/** Times are kept as unsigned 32-bit offsets from an epoch that moves when they would not fit. */
const HALF_RANGE = 2 ** 31;
const MAX_OFFSET = 2 ** 32 - 1;
const MAX_TOTAL = 2 ** 32 - 1;
/** Per-source arrays start this long and double up to the capacity. */
const INITIAL_SLOTS = 1024;

function defaultPool(capacity: number): number {
  return Math.max(2 * capacity, 4 << MAX_ORDER);
}

function randomOdd(): number {
  return (Math.floor(Math.random() * 2 ** 32) | 1) >>> 0;
}

export class SourceTracker {
  private count = 0;
  evicted = 0;

  // Per source index (struct of arrays).
  private word = new Uint32Array(0);
  /** The IPv4 address, or the IPv6 address's slot in `v6`. */
  private addr = new Uint32Array(0);
  private first = new Uint32Array(0);
  private last = new Uint32Array(0);
  private total = new Uint32Array(0);
  private older = new Int32Array(0);
  /** Next in recency; for a free index, the next free one. */
  private newer = new Int32Array(0);
  /** Pool segment of a source with two or more probes. */
  private seg = new Int32Array(0);
  private distinctProbes = new Uint16Array(0);
  /** Indices handed out so far; freed ones are reused first. */
  private used = 0;
  private freeIndex = -1;
  private oldest = -1;
  private newest = -1;

  /** Index + 1 per slot (0: empty), linear probing, at most half full. */
  private table = new Int32Array(0);
  private shift = 32;
  /** Seeded multiply-shift hashing: chosen (spoofed) addresses cannot pile into one probe chain. */
  private readonly mul = [randomOdd(), randomOdd(), randomOdd(), randomOdd(), randomOdd()] as const;

  /** IPv6 addresses, four words each, slots reused through a free list. */
  private v6 = new Uint32Array(0);
  private v6Used = 0;
  private v6Free = -1;

  private readonly pool: ProbePool;
  private epoch = NaN;
  private readonly key = new AddressKey();

  /**
   * `poolEntries`: the most probes held in the pool, for sources with more than one
   * (default: two per source of the capacity, raised with it by configure()).
   */
  constructor(
    private capacity: number,
    private windowMs: number,
    private readonly poolEntries?: number,
  ) {
    this.pool = new ProbePool(poolEntries ?? defaultPool(capacity));
    this.grow();
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held in typed arrays (all the tracker's state but a few fixed objects). */
  get bytes(): number {
    const arrays = [this.word, this.addr, this.first, this.last, this.total, this.older, this.newer, this.seg, this.distinctProbes, this.table, this.v6];
    return arrays.reduce((sum, a) => sum + a.byteLength, 0) + this.pool.bytes;
  }

  configure(capacity: number, windowMs: number): void {
    this.capacity = capacity;
    this.windowMs = windowMs;
    if (this.poolEntries === undefined) this.pool.raise(defaultPool(capacity));
    while (this.count > this.capacity) this.evictOldest();
  }

  /** The index of a tracked source, or -1. */
  find(source: Address): number {
    this.key.load(source.bytes);
    return this.lookup();
  }

  /** Distinct probes in the window (capped at MAX_RECORDED_PROBES). */
  distinct(index: number): number {
    return this.distinctProbes[index]!;
  }

  isTriggered(index: number): boolean {
    return (this.word[index]! & TRIGGERED) !== 0;
  }

  setTriggered(index: number): void {
    this.word[index]! |= TRIGGERED;
  }

  /** Its block was refused by the rate limit within the window (already answered with an alert). */
  isRateLimited(index: number): boolean {
    return (this.word[index]! & RATE_LIMITED) !== 0;
  }

  setRateLimited(index: number): void {
    this.word[index]! |= RATE_LIMITED;
  }

  /** Checked against the ignore lists in force (see uncheckAll). */
  isChecked(index: number): boolean {
    return (this.word[index]! & CHECKED) !== 0;
  }

  setChecked(index: number): void {
    this.word[index]! |= CHECKED;
  }

  /** The ignore lists changed: every source has to be checked again. */
  uncheckAll(): void {
    for (let i = 0; i < this.used; i++) this.word[i]! &= ~CHECKED;
  }

  /**
   * Records a probe and returns its source's index, with probes outside the window
   * forgotten. `found` is what find(probe.source) returned, when the caller just asked
   * (nothing else of the tracker in between: the address loaded by find() is used).
   */
  record(probe: Probe, found = this.find(probe.source)): number {
    const t = this.offset(probe.time);
    let i = found;
    const key = (probe.protocol === 'udp' ? UDP_BIT : 0) | probe.port;
    if (i < 0) {
      i = this.insert();
      this.start(i, t, key);
    } else if (t - this.last[i]! > this.windowMs) {
      this.clearProbes(i);
      this.word[i]! &= V6;
      this.start(i, t, key);
    } else {
      this.unlink(i);
      this.append(i);
      this.addProbe(i, key, t);
      this.last[i] = t;
    }
    const total = this.total[i]! + (probe.repeats ?? 1);
    this.total[i] = total > MAX_TOTAL ? MAX_TOTAL : total;
    this.word[i]! |= typeBit(probe.type);
    return i;
  }

  forget(source: Address): void {
    const i = this.find(source);
    if (i >= 0) this.remove(i);
  }

  /** Drops sources idle for longer than the window. */
  expire(now: number): number {
    let dropped = 0;
    while (this.oldest >= 0 && now - (this.epoch + this.last[this.oldest]!) > this.windowMs) {
      this.remove(this.oldest);
      dropped++;
    }
    return dropped;
  }

  /** A copy of a tracked source's state. */
  state(source: Address): SourceState | undefined {
    const i = this.find(source);
    if (i < 0) return undefined;
    const w = this.word[i]!;
    const probes = this.probeTimes(i);
    const types = new Set(this.types(i));
    const a = this.addr[i]!;
    const v = this.v6;
    const text = w & V6 ? this.key.format(6, v[4 * a]!, v[4 * a + 1]!, v[4 * a + 2]!, v[4 * a + 3]!) : this.key.format(4, a, 0, 0, 0);
    return {
      source: text,
      firstSeen: this.epoch + this.first[i]!,
      lastSeen: this.epoch + this.last[i]!,
      probes,
      types,
      total: this.total[i]!,
      triggered: (w & TRIGGERED) !== 0,
    };
  }

  /** The distinct probes in the window ("tcp/79") with when each was last seen, oldest first. */
  probeTimes(i: number): Map<string, number> {
    const probes = new Map<string, number>();
    const n = this.distinctProbes[i]!;
    const name = (k: number): string => `${k & UDP_BIT ? 'udp' : 'tcp'}/${k & 0xffff}`;
    if (n === 1) probes.set(name(this.word[i]! & PROBE_MASK), this.epoch + this.last[i]!);
    else {
      const d = this.pool.data;
      for (let e = this.seg[i]!, end = e + n; e < end; e++) probes.set(name(d[2 * e]!), this.epoch + d[2 * e + 1]!);
    }
    return probes;
  }

  /** The probe types a source sent in the window. */
  types(i: number): ProbeType[] {
    const w = this.word[i]!;
    return TYPES.filter((_, bit) => (w & (1 << (TYPE_SHIFT + bit))) !== 0);
  }

  /** A fresh state whose only probe is `key` at `t`, as the most recent source. */
  private start(i: number, t: number, key: number): void {
    this.word[i]! |= key;
    this.first[i] = t;
    this.last[i] = t;
    this.total[i] = 0;
    this.distinctProbes[i] = 1;
    this.unlink(i);
    this.append(i);
  }

  /** Adds or refreshes a probe of a source whose last-seen time is still the previous one. */
  private addProbe(i: number, key: number, t: number): void {
    let n = this.distinctProbes[i]!;
    if (n === 1) {
      const only = this.word[i]! & PROBE_MASK;
      if (only === key) return; // its time is the source's last-seen time
      const e = this.allocate(i, MIN_ORDER);
      const d = this.pool.data;
      d[2 * e] = only;
      d[2 * e + 1] = this.last[i]!;
      this.seg[i] = e;
      this.word[i] = (this.word[i]! & ~PROBE_MASK) | (MIN_ORDER << ORDER_SHIFT);
      n = 1;
    }
    let e = this.seg[i]!;
    let d = this.pool.data;
    let at = -1;
    for (let j = 0; j < n; j++) {
      if (d[2 * (e + j)] === key) {
        at = j;
        break;
      }
    }
    if (at >= 0) {
      // Most recent last: the probe moves to the end.
      d.copyWithin(2 * (e + at), 2 * (e + at + 1), 2 * (e + n));
      n--;
    } else {
      if (n === MAX_RECORDED_PROBES) {
        d.copyWithin(2 * e, 2 * (e + 1), 2 * (e + n));
        n--;
      }
      const order = (this.word[i]! >>> ORDER_SHIFT) & 15;
      if (n === 1 << order) {
        const moved = this.allocate(i, order + 1);
        d = this.pool.data;
        d.copyWithin(2 * moved, 2 * e, 2 * (e + n));
        this.pool.free(e, order);
        e = moved;
        this.seg[i] = e;
        this.word[i] = (this.word[i]! & ~(15 << ORDER_SHIFT)) | ((order + 1) << ORDER_SHIFT);
      }
    }
    d[2 * (e + n)] = key;
    d[2 * (e + n) + 1] = t;
    n++;
    // Forget probes older than the window, from the oldest up to the first one inside it.
    const horizon = t - this.windowMs;
    let old = 0;
    while (d[2 * (e + old) + 1]! < horizon) old++;
    if (old) {
      d.copyWithin(2 * e, 2 * (e + old), 2 * (e + n));
      n -= old;
    }
    this.distinctProbes[i] = n;
    if (n === 1) {
      this.clearProbes(i);
      this.word[i]! |= key;
      this.distinctProbes[i] = 1;
      return;
    }
    // A segment at most a quarter full gives back its upper half.
    let order = (this.word[i]! >>> ORDER_SHIFT) & 15;
    while (order > MIN_ORDER && n <= 1 << (order - 2)) {
      this.pool.halve(e, order);
      order--;
    }
    this.word[i] = (this.word[i]! & ~(15 << ORDER_SHIFT)) | (order << ORDER_SHIFT);
  }

  /** A pool segment for source `i`, dropping the least recently seen others while the pool is full. */
  private allocate(i: number, order: number): number {
    for (;;) {
      const e = this.pool.alloc(order);
      if (e >= 0) return e;
      if (this.oldest === i) throw new Error(`source tracker: a probe pool of ${this.pool.limit} entries cannot hold one source`);
      this.evictOldest();
    }
  }

  /** Frees the probes of source `i` (its pool segment, or its only probe in the flags word). */
  private clearProbes(i: number): void {
    const w = this.word[i]!;
    const order = (w >>> ORDER_SHIFT) & 15;
    if (order) this.pool.free(this.seg[i]!, order);
    this.word[i] = w & ~(PROBE_MASK | (15 << ORDER_SHIFT));
    this.distinctProbes[i] = 0;
  }

  /** Time as an offset from the epoch; moves the epoch (and every stored time) when out of range. */
  private offset(time: number): number {
    let o = time - this.epoch;
    if (!(o >= 0 && o <= MAX_OFFSET)) {
      this.rebase(time - HALF_RANGE);
      o = time - this.epoch;
    }
    return o;
  }

  /**
   * Times that fall before the new epoch become the epoch itself: they are more than 2^31 ms
   * (24 days) old, beyond any window, so they still count as expired.
   */
  private rebase(epoch: number): void {
    if (Number.isNaN(this.epoch)) {
      this.epoch = epoch;
      return;
    }
    const delta = epoch - this.epoch;
    const move = (x: number): number => Math.min(MAX_OFFSET, Math.max(0, x - delta));
    const d = this.pool.data;
    for (let i = this.oldest; i >= 0; i = this.newer[i]!) {
      this.first[i] = move(this.first[i]!);
      this.last[i] = move(this.last[i]!);
      const n = this.distinctProbes[i]!;
      if (n > 1) for (let e = this.seg[i]!, end = e + n; e < end; e++) d[2 * e + 1] = move(d[2 * e + 1]!);
    }
    this.epoch = epoch;
  }

  /** A new source for the parsed key: an index (evicting the least recently seen when full) in the table. */
  private insert(): number {
    if (this.count >= this.capacity) this.evictOldest();
    let i: number;
    if (this.freeIndex >= 0) {
      i = this.freeIndex;
      this.freeIndex = this.newer[i]!;
    } else {
      if (this.used === this.word.length) this.grow();
      i = this.used++;
    }
    this.word[i] = 0;
    this.older[i] = -1;
    this.newer[i] = -1;
    if (this.key.family === 4) this.addr[i] = this.key.words[0]!;
    else {
      this.word[i] = V6;
      let s = this.v6Free;
      if (s >= 0) this.v6Free = this.v6[4 * s]! - 1;
      else {
        if (4 * this.v6Used === this.v6.length) {
          const slots = Math.min(Math.max(INITIAL_SLOTS, this.v6.length / 2), Math.max(this.capacity, this.v6Used + 1));
          this.v6 = this.resized(this.v6, 4 * slots);
        }
        s = this.v6Used++;
      }
      this.v6.set(this.key.words, 4 * s);
      this.addr[i] = s;
    }
    const mask = this.table.length - 1;
    let slot = this.hashOf(i);
    while (this.table[slot] !== 0) slot = (slot + 1) & mask;
    this.table[slot] = i + 1;
    this.count++;
    return i;
  }

  private remove(i: number): void {
    this.unindex(i);
    this.unlink(i);
    this.clearProbes(i);
    if (this.word[i]! & V6) {
      const s = this.addr[i]!;
      this.v6[4 * s] = this.v6Free + 1;
      this.v6Free = s;
    }
    this.word[i] = 0;
    this.newer[i] = this.freeIndex;
    this.freeIndex = i;
    this.count--;
  }

  private evictOldest(): void {
    this.remove(this.oldest);
    this.evicted++;
  }

  /** The index of the parsed key, or -1. */
  private lookup(): number {
    const mask = this.table.length - 1;
    const k = this.key;
    const w0 = k.words[0]!;
    if (k.family === 4) {
      for (let slot = Math.imul(w0, this.mul[0]) >>> this.shift; ; slot = (slot + 1) & mask) {
        const v = this.table[slot]!;
        if (v === 0) return -1;
        if (this.addr[v - 1] === w0 && !(this.word[v - 1]! & V6)) return v - 1;
      }
    }
    const [, w1, w2, w3] = k.words as unknown as [number, number, number, number];
    const vs = this.v6;
    for (let slot = this.hash6(w0, w1, w2, w3); ; slot = (slot + 1) & mask) {
      const v = this.table[slot]!;
      if (v === 0) return -1;
      if (!(this.word[v - 1]! & V6)) continue;
      const s = 4 * this.addr[v - 1]!;
      if (vs[s] === w0 && vs[s + 1] === w1 && vs[s + 2] === w2 && vs[s + 3] === w3) return v - 1;
    }
  }

  private hash6(w0: number, w1: number, w2: number, w3: number): number {
    const m = this.mul;
    return (Math.imul(w0, m[1]) + Math.imul(w1, m[2]) + Math.imul(w2, m[3]) + Math.imul(w3, m[4])) >>> this.shift;
  }

  /** The home slot of tracked source `i`. */
  private hashOf(i: number): number {
    const a = this.addr[i]!;
    if (!(this.word[i]! & V6)) return Math.imul(a, this.mul[0]) >>> this.shift;
    const v = this.v6;
    return this.hash6(v[4 * a]!, v[4 * a + 1]!, v[4 * a + 2]!, v[4 * a + 3]!);
  }

  /** Takes `i` out of the table, moving later entries of its run back (no tombstones). */
  private unindex(i: number): void {
    const t = this.table;
    const mask = t.length - 1;
    let hole = this.hashOf(i);
    while (t[hole] !== i + 1) hole = (hole + 1) & mask;
    for (let next = (hole + 1) & mask; t[next] !== 0; next = (next + 1) & mask) {
      const home = this.hashOf(t[next]! - 1);
      // It may fill the hole unless its home lies after the hole (cyclically, up to itself).
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        t[hole] = t[next]!;
        hole = next;
      }
    }
    t[hole] = 0;
  }

  /** Doubles the per-source arrays (up to the capacity) and rebuilds the table to match. */
  private grow(): void {
    const size = Math.max(this.used + 1, Math.min(Math.max(INITIAL_SLOTS, 2 * this.word.length), this.capacity));
    this.word = this.resized(this.word, size);
    this.addr = this.resized(this.addr, size);
    this.first = this.resized(this.first, size);
    this.last = this.resized(this.last, size);
    this.total = this.resized(this.total, size);
    this.older = this.resized(this.older, size);
    this.newer = this.resized(this.newer, size);
    this.seg = this.resized(this.seg, size);
    this.distinctProbes = this.resized(this.distinctProbes, size);
    let bits = 1;
    while (1 << bits < 2 * size) bits++;
    if (1 << bits === this.table.length) return;
    this.table = new Int32Array(1 << bits);
    this.shift = 32 - bits;
    const mask = this.table.length - 1;
    for (let i = this.oldest; i >= 0; i = this.newer[i]!) {
      let slot = this.hashOf(i);
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = i + 1;
    }
  }

  private resized<T extends Uint32Array | Int32Array | Uint16Array>(a: T, size: number): T {
    const b = new (a.constructor as new (n: number) => T)(size);
    b.set(a);
    return b;
  }

  private append(i: number): void {
    this.older[i] = this.newest;
    this.newer[i] = -1;
    if (this.newest >= 0) this.newer[this.newest] = i;
    else this.oldest = i;
    this.newest = i;
  }

  private unlink(i: number): void {
    const o = this.older[i]!;
    const n = this.newer[i]!;
    if (o >= 0) this.newer[o] = n;
    else if (this.oldest === i) this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else if (this.newest === i) this.newest = o;
    this.older[i] = -1;
    this.newer[i] = -1;
  }
}
