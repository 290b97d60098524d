// The BlockedHosts known, by name and by the address each blocks: the agent keeps one (those
// it enforces), the operator another (all of them). Fed one BlockedHost at a time from a
// watch's events, so a change costs the same however many are held. Pure.
import type { AddressOrNetwork } from '../net/address.js';

/** What a BlockedHost asks for, read once from its spec. */
export interface BlockEntry {
  /** The address or network, parsed from the spec; null when the spec's is none (still indexed by name). */
  target: AddressOrNetwork | null;
  source: 'detected' | 'manual';
  /** Epoch ms; Infinity without expiresAt. */
  expiresAt: number;
}

export class BlockedHostIndex<T extends BlockEntry = BlockEntry> {
  private readonly byName = new Map<string, T>();
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly bySource = { detected: 0, manual: 0 };

  get size(): number {
    return this.byName.size;
  }

  /** How many entries came from detections and how many were made by hand. */
  get counts(): Readonly<{ detected: number; manual: number }> {
    return this.bySource;
  }

  get(name: string): T | undefined {
    return this.byName.get(name);
  }

  /** Replaces the entry of `name` (undefined: removes it) and returns the one it replaced. */
  set(name: string, entry: T | undefined): T | undefined {
    const before = this.byName.get(name);
    if (before) {
      this.byName.delete(name);
      this.bySource[before.source]--;
      if (before.target !== null) {
        const names = this.byAddress.get(before.target.text);
        names?.delete(name);
        if (names?.size === 0) this.byAddress.delete(before.target.text);
      }
    }
    if (entry) {
      this.byName.set(name, entry);
      this.bySource[entry.source]++;
      if (entry.target !== null) {
        let names = this.byAddress.get(entry.target.text);
        if (!names) this.byAddress.set(entry.target.text, (names = new Set()));
        names.add(name);
      }
    }
    return before;
  }

  /** The entries that block `address`, the first indexed first. */
  *holding(address: string): IterableIterator<T> {
    for (const name of this.byAddress.get(address) ?? []) yield this.byName.get(name)!;
  }

  /** The first entry that blocks `address`, if any. */
  first(address: string): T | undefined {
    for (const entry of this.holding(address)) return entry;
    return undefined;
  }

  /** The latest expiry among the entries that block `address`; 0 when none does. */
  until(address: string): number {
    let until = 0;
    for (const entry of this.holding(address)) until = Math.max(until, entry.expiresAt);
    return until;
  }

  has(address: string): boolean {
    return this.byAddress.has(address);
  }

  names(): IterableIterator<string> {
    return this.byName.keys();
  }

  entries(): IterableIterator<[string, T]> {
    return this.byName.entries();
  }

  /** Every address some entry blocks. */
  addresses(): IterableIterator<string> {
    return this.byAddress.keys();
  }

  /** The names of the entries that block exactly `address`. */
  namesAt(address: string): Iterable<string> {
    return this.byAddress.get(address) ?? [];
  }
}
