// A firewall that only remembers (the shape of a dry-run backend): the kernel sets as maps,
// with the same rules as the real backends where the callers rely on them (an addition of
// one already there keeps its timeout, removing one gone is no error, entries time out,
// interval sets refuse overlapping networks). For tests of the responder, the sentry and
// the agent's logic without root; the real backends keep their own kernel tests.
import { addressOrNetworkOf, isNetwork, prefixOf, type AddressOrNetwork } from '../../net/address.js';
import type { Family } from '../../net/ip.js';
import { ADD_MANY_MAX, checkTag, timeoutSeconds, type Firewall, type FirewallAdd, type FirewallEntry, type SetupOptions } from './firewall.js';

interface Entry {
  target: AddressOrNetwork;
  /** Epoch ms; Infinity without a timeout. */
  until: number;
  tag?: string;
}

export class MemoryFirewall implements Firewall {
  readonly name = 'memory';
  private readonly sets: Record<Family, Map<string, Entry>> = { 4: new Map(), 6: new Map() };
  private ready = false;
  /** Every call, in order ("add 198.18.0.1", "remove 198.18.0.1", "setup"), for assertions. */
  readonly calls: string[] = [];

  /** `now`: the clock entries time out by. */
  constructor(private readonly now: () => number = Date.now) {}

  async setup(options: SetupOptions = {}): Promise<void> {
    this.calls.push('setup');
    if (!options.keepEntries) for (const set of Object.values(this.sets)) set.clear();
    this.ready = true;
  }

  async add(target: AddressOrNetwork, timeoutMs: number, tag?: string): Promise<void> {
    this.calls.push(`add ${target.text}`);
    this.put({ target, timeoutMs, ...(tag !== undefined ? { tag } : {}) });
  }

  async addMany(adds: FirewallAdd[]): Promise<void> {
    if (adds.length > ADD_MANY_MAX) throw new Error(`addMany takes at most ${ADD_MANY_MAX} additions`);
    this.calls.push(`addMany ${adds.length}`);
    // All or none, as one nftables transaction.
    const before = { 4: new Map(this.sets[4]), 6: new Map(this.sets[6]) };
    try {
      for (const a of adds) this.put(a);
    } catch (err) {
      this.sets[4] = before[4];
      this.sets[6] = before[6];
      throw err;
    }
  }

  async remove(target: AddressOrNetwork): Promise<void> {
    this.calls.push(`remove ${target.text}`);
    this.set(target.family).delete(target.text);
  }

  async replace(a: FirewallAdd): Promise<void> {
    this.calls.push(`replace ${a.target.text}`);
    // One transaction: the entry is never missing between.
    const set = this.set(a.target.family);
    const before = set.get(a.target.text);
    set.delete(a.target.text);
    try {
      this.put(a);
    } catch (err) {
      if (before) set.set(a.target.text, before);
      throw err;
    }
  }

  /** The kernel fast path's trap: `target` put in the set from the packet path, untagged. */
  trap(target: AddressOrNetwork, timeoutMs: number): void {
    this.calls.push(`trap ${target.text}`);
    this.put({ target, timeoutMs });
  }

  async list(family: Family): Promise<FirewallEntry[]> {
    const now = this.now();
    return [...this.set(family).values()].map((e) => ({
      target: e.target,
      ...(Number.isFinite(e.until) ? { expiresInSeconds: Math.max(0, Math.ceil((e.until - now) / 1000)) } : {}),
      ...(e.tag ? { tag: e.tag } : {}),
    }));
  }

  async teardown(): Promise<void> {
    this.calls.push('teardown');
    for (const set of Object.values(this.sets)) set.clear();
    this.ready = false;
  }

  /** Whether `address` (a test's text) is dropped now: in a set, directly or inside a network. */
  blocks(address: string): boolean {
    const ip = addressOrNetworkOf(address);
    if (!ip) return false;
    for (const e of this.set(ip.family).values()) if (contains(e.target, ip)) return true;
    return false;
  }

  private put(a: FirewallAdd): void {
    if (!this.ready) throw new Error('memory firewall: setup not run');
    checkTag(a.tag);
    const { target } = a;
    const set = this.set(target.family);
    if (set.has(target.text)) return;
    // Networks go to an interval set, which refuses one overlapping another.
    if (isNetwork(target))
      for (const e of set.values())
        if (isNetwork(e.target) && (contains(e.target, target) || contains(target, e.target))) throw new Error(`${target.text} overlaps an interval already in the set`);
    const until = Number.isFinite(a.timeoutMs) ? this.now() + timeoutSeconds(a.timeoutMs) * 1000 : Infinity;
    set.set(target.text, { target, until, ...(a.tag ? { tag: a.tag } : {}) });
  }

  /** The set of a family, entries past their timeout gone. */
  private set(family: Family): Map<string, Entry> {
    const now = this.now();
    const set = this.sets[family];
    for (const [key, e] of set) if (e.until <= now) set.delete(key);
    return set;
  }
}

/** Every address of `inner` is in `outer`. */
function contains(outer: AddressOrNetwork, inner: AddressOrNetwork): boolean {
  const prefix = prefixOf(outer);
  if (outer.family !== inner.family || prefix > prefixOf(inner)) return false;
  for (let bit = 0; bit < prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((outer.bytes[bit >> 3]! & mask) !== (inner.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}
