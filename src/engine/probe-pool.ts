// Probes of the sources that sent more than one distinct probe: (key, time) pairs in one
// typed array, handed out in power-of-two segments by a buddy allocator. Freed segments
// merge with their free buddies, so once enough is freed any size can be served again;
// the array grows geometrically up to a fixed limit and never beyond it.

/** Smallest segment: two probes. */
export const MIN_ORDER = 1;
/** Largest segment: 256 probes, the most a source records. */
export const MAX_ORDER = 8;
const TOP = 1 << MAX_ORDER;
/** Entries of the first allocation. */
const INITIAL = 4 * TOP;

export class ProbePool {
  /** Entry e holds its probe key at data[2e] and its time at data[2e + 1]. A free segment
   * keeps its free-list links (entry + 1, 0 for none) in its first entry instead. */
  data = new Uint32Array(0);
  /** For each pair of entries: the order of the free segment starting there, 0 when none does. */
  private freeAt = new Uint8Array(0);
  /** First free segment of each order (entry + 1, 0 for none). */
  private readonly heads = new Int32Array(MAX_ORDER + 1);
  /** Entries in use. */
  used = 0;

  /** The most entries the pool may hold, in whole top-level segments. */
  limit = 0;

  constructor(limit: number) {
    this.raise(limit);
  }

  /** Lets the pool grow to `limit` entries (a lower limit than the current one is ignored). */
  raise(limit: number): void {
    if (!Number.isInteger(limit) || limit < 2 * TOP) throw new Error(`probe pool: limit ${limit} is not a whole number of entries >= ${2 * TOP}`);
    this.limit = Math.max(this.limit, Math.ceil(limit / TOP) * TOP);
  }

  /** Entries allocated so far (the array's length in entries). */
  get entries(): number {
    return this.data.length >> 1;
  }

  get bytes(): number {
    return this.data.byteLength + this.freeAt.byteLength;
  }

  /** A segment of 2^order entries, or -1 when the pool is full. May replace `data`. */
  alloc(order: number): number {
    let o = order;
    while (o <= MAX_ORDER && this.heads[o] === 0) o++;
    if (o > MAX_ORDER) {
      if (!this.grow()) return -1;
      o = MAX_ORDER;
    }
    const e = this.heads[o]! - 1;
    this.unlink(e, o);
    // Split down to the size asked for; the upper halves go back on the free lists.
    while (o > order) {
      o--;
      this.push(e + (1 << o), o);
    }
    this.used += 1 << order;
    return e;
  }

  free(entry: number, order: number): void {
    this.used -= 1 << order;
    let e = entry;
    let o = order;
    while (o < MAX_ORDER) {
      const buddy = e ^ (1 << o);
      if (this.freeAt[buddy >> 1] !== o) break;
      this.unlink(buddy, o);
      e &= ~(1 << o);
      o++;
    }
    this.push(e, o);
  }

  /** Gives back the upper half of a segment in use; the lower half stays where it is. */
  halve(entry: number, order: number): void {
    this.free(entry + (1 << (order - 1)), order - 1);
  }

  private grow(): boolean {
    const old = this.entries;
    if (old >= this.limit) return false;
    const size = Math.min(this.limit, Math.max(INITIAL, old * 2));
    const data = new Uint32Array(size * 2);
    data.set(this.data);
    const freeAt = new Uint8Array(size >> 1);
    freeAt.set(this.freeAt);
    this.data = data;
    this.freeAt = freeAt;
    for (let e = size - TOP; e >= old; e -= TOP) this.push(e, MAX_ORDER);
    return true;
  }

  private push(e: number, o: number): void {
    const head = this.heads[o]!;
    this.data[2 * e] = head;
    this.data[2 * e + 1] = 0;
    if (head) this.data[2 * (head - 1) + 1] = e + 1;
    this.heads[o] = e + 1;
    this.freeAt[e >> 1] = o;
  }

  private unlink(e: number, o: number): void {
    const next = this.data[2 * e]!;
    const prev = this.data[2 * e + 1]!;
    if (prev) this.data[2 * (prev - 1)] = next;
    else this.heads[o] = next;
    if (next) this.data[2 * (next - 1) + 1] = prev;
    this.freeAt[e >> 1] = 0;
  }
}
