// Names by expiry time, earliest first, so what expired is found without looking at what
// did not: a binary min-heap. Entries are not removed when a name's expiry changes or the
// name goes; whoever pops one checks it against what the name holds now, and compact()
// drops the stale ones so that churn (a name changed or deleted again and again) cannot grow
// it without bound. Pure.

export class ExpiryHeap {
  private readonly at: number[] = [];
  private readonly names: string[] = [];

  get size(): number {
    return this.at.length;
  }

  /** Adds `name` expiring at `expiresAt` (epoch ms); one that never expires is not kept. */
  push(name: string, expiresAt: number): void {
    if (!Number.isFinite(expiresAt)) return;
    let i = this.at.length;
    this.at.push(expiresAt);
    this.names.push(name);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.at[parent]! <= expiresAt) break;
      this.move(parent, i);
      i = parent;
    }
    this.at[i] = expiresAt;
    this.names[i] = name;
  }

  /**
   * Keeps only the entries whose expiry is still the one `current` gives for their name, one
   * per name, when stale ones have come to outnumber `live` (the names that can have one)
   * by more than half: amortised over the pushes that made them stale.
   */
  compact(live: number, current: (name: string) => number | undefined): void {
    if (this.at.length <= 2 * live + 1024) return;
    const kept = new Map<string, number>();
    this.at.forEach((at, i) => {
      const name = this.names[i]!;
      if (current(name) === at) kept.set(name, at);
    });
    const sorted = [...kept].sort((a, b) => a[1] - b[1]); // an array sorted by key is a heap
    this.at.length = 0;
    this.names.length = 0;
    for (const [name, at] of sorted) {
      this.names.push(name);
      this.at.push(at);
    }
  }

  /** Takes out every entry that expired by `now`, earliest first, each with the expiry it was added with. */
  *expired(now: number): IterableIterator<{ name: string; expiresAt: number }> {
    while (this.at.length && this.at[0]! <= now) {
      const top = { name: this.names[0]!, expiresAt: this.at[0]! };
      const lastAt = this.at.pop()!;
      const lastName = this.names.pop()!;
      if (this.at.length) this.siftDown(lastAt, lastName);
      yield top;
    }
  }

  private siftDown(at: number, name: string): void {
    const n = this.at.length;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.at[child + 1]! < this.at[child]!) child++;
      if (this.at[child]! >= at) break;
      this.move(child, i);
      i = child;
    }
    this.at[i] = at;
    this.names[i] = name;
  }

  private move(from: number, to: number): void {
    this.at[to] = this.at[from]!;
    this.names[to] = this.names[from]!;
  }
}
