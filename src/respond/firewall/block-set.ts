// The node firewall set shared by several owners: the local engine ("local": blocks decided
// on this node) and the cluster ("cluster": BlockedHosts). An address stays in the kernel
// while any owner wants it, for as long as the longest of them. Each kernel entry is
// tagged with the owner that placed it, so after a restart the agent can tell a stale
// cluster entry (removed: its BlockedHost may be gone) from a local one (left to expire).
//
// The kernel fast path adds sources to the same sets from the packet path, untagged: the
// local claim that follows its report replaces such an entry with a local-tagged one in
// one transaction, and until then reconcile leaves it alone.
//
// Every kernel entry has a timeout, at most maxEntryLifetimeMs (24 h) away and renewed by
// reconcile, so nothing written here outlives the agent by more than that. A CIDR inside
// another wanted CIDR stays out of the kernel (interval sets refuse overlaps) until the
// outer one is released.
import { isNetwork, type AddressOrNetwork, type Network } from '../../net/address.js';
import { cidrCovers, type Family } from '../../net/ip.js';
import { ADD_MANY_MAX, type Firewall, type FirewallAdd, type FirewallEntry, type SetupOptions } from './firewall.js';
import type { FastPath, FastPathSettings } from '../fast-path/fast-path.js';

export type Owner = 'local' | 'cluster';

interface Wanted {
  target: AddressOrNetwork;
  /** Set for a network (an interval-set element), which may cover or be covered by another. */
  net?: Network;
  /** Owner -> until (epoch ms, Infinity for no expiry). */
  owners: Map<Owner, number>;
  /** What the kernel holds: its expiry (epoch ms) and tag (null: untagged, as the fast path's trap adds it). */
  placed?: Placed;
}

interface Placed {
  until: number;
  tag: Owner | null;
}

/** A kernel timeout this much shorter than wanted is renewed (remove and add again). */
const RENEW_SLACK_MS = 5_000;
/** The longest kernel timeout given: entries without an expiry are renewed within it. */
export const MAX_ENTRY_LIFETIME_MS = 24 * 3_600_000;

export interface BlockSetOptions {
  /** The longest timeout a kernel entry gets (MAX_ENTRY_LIFETIME_MS); reconcile renews it past half. */
  maxEntryLifetimeMs?: number;
}

interface Pending {
  w: Wanted;
  add: FirewallAdd;
  placed: Placed;
  /** An entry is in the kernel already: replaced in one transaction where the backend can. */
  replace?: boolean;
}

/** Trapped sources not claimed yet, at most this many remembered (the kernel's budget bounds them well below). */
const TRAPPED_MAX = 100_000;

/** Entries compared between two turns of the event loop during a reconcile. */
const RECONCILE_SLICE = 5000;

export class BlockSet {
  private readonly wanted = new Map<string, Wanted>();
  private queue: Promise<void> = Promise.resolve();
  /** Addresses whose kernel entry may be out of date, and the update that will take them. */
  private readonly dirty = new Set<string>();
  private nextFlush: Promise<void> | null = null;
  /** Wanted CIDRs (not single addresses), for the overlap checks. */
  private readonly nets = new Set<string>();
  private readonly lifetimeMs: number;
  /** Sources the fast path trapped in the kernel (untagged) that no owner claimed yet, with the kernel's expiry. */
  private readonly trapped = new Map<string, number>();
  /** While reconcile lists the kernel sets: the addresses changed since (the listing is older than they are). */
  private changedSinceListing: Set<string> | null = null;
  /** Wanted addresses and CIDRs by family, kept as they come and go. */
  private readonly families: Record<Family, number> = { 4: 0, 6: 0 };

  constructor(
    readonly firewall: Firewall,
    private readonly onError: (err: unknown, address: string) => void,
    options: BlockSetOptions = {},
  ) {
    this.lifetimeMs = options.maxEntryLifetimeMs ?? MAX_ENTRY_LIFETIME_MS;
  }

  get size(): number {
    return this.wanted.size;
  }

  /** Whether an address or network (its canonical text) is wanted. */
  has(address: string): boolean {
    return this.wanted.has(address);
  }

  /** Addresses and CIDRs wanted, by family. */
  countByFamily(): Record<Family, number> {
    return { ...this.families };
  }

  /** Kernel changes run one at a time, in order, so an add and a later remove never swap. */
  private serial(address: string, work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work).catch((err: unknown) => this.onError(err, address));
    this.queue = next;
    return next;
  }

  claim(owner: Owner, target: AddressOrNetwork, until: number): Promise<void> {
    const address = target.text;
    let w = this.wanted.get(address);
    if (!w) {
      this.wanted.set(address, (w = { target, owners: new Map(), ...(isNetwork(target) ? { net: target } : {}) }));
      this.families[target.family]++;
      if (w.net) this.nets.add(address);
    }
    const trappedUntil = this.trapped.get(address);
    if (trappedUntil !== undefined) {
      this.trapped.delete(address);
      w.placed ??= { until: trappedUntil, tag: null };
    }
    // The agent re-claims every BlockedHost each second: an unchanged claim costs nothing.
    if (w.placed && w.placed.tag !== null && w.owners.get(owner) === until) return Promise.resolve();
    w.owners.set(owner, until);
    return this.sync(address);
  }

  release(owner: Owner, target: AddressOrNetwork): Promise<void> {
    const address = target.text;
    const w = this.wanted.get(address);
    if (!w || !w.owners.delete(owner)) return Promise.resolve();
    return this.sync(address);
  }

  /**
   * Brings an address's kernel entry in line with what its owners want. Addresses changed
   * while a kernel update runs are taken together by the next one, so a burst of claims
   * (an agent starting with 100,000 BlockedHosts) becomes a few batched additions.
   */
  private sync(address: string): Promise<void> {
    this.dirty.add(address);
    this.changedSinceListing?.add(address);
    return (this.nextFlush ??= this.serial('*', async () => {
      this.nextFlush = null;
      const addresses = [...this.dirty];
      this.dirty.clear();
      await this.flush(addresses);
    }));
  }

  private async flush(addresses: string[]): Promise<void> {
    const adds: Pending[] = [];
    // prepare() may add CIDRs a released one held: they go in this same update.
    const queue = new Set(addresses);
    for (const address of queue) {
      try {
        const add = await this.prepare(address, queue);
        if (add) adds.push(add);
      } catch (err) {
        this.onError(err, address);
      }
    }
    // A replacement goes alone (one transaction each); a batch of additions would keep the old entries.
    for (const p of adds.filter((a) => a.replace)) {
      try {
        await this.firewall.replace!(p.add);
        p.w.placed = p.placed;
      } catch (err) {
        this.onError(err, p.add.target.text);
      }
    }
    const fresh = adds.filter((a) => !a.replace);
    for (let i = 0; i < fresh.length; i += ADD_MANY_MAX) {
      const chunk = fresh.slice(i, i + ADD_MANY_MAX);
      if (chunk.length > 1 && this.firewall.addMany) {
        try {
          await this.firewall.addMany(chunk.map((p) => p.add));
          for (const p of chunk) p.w.placed = p.placed;
          continue;
        } catch {
          // All or none: one by one below, so each failure is told with its own address.
        }
      }
      for (const p of chunk) {
        try {
          await this.firewall.add(p.add.target, p.add.timeoutMs, p.add.tag);
          p.w.placed = p.placed;
        } catch (err) {
          this.onError(err, p.add.target.text);
        }
      }
    }
  }

  /** Another wanted CIDR that holds all of this one, if any. */
  private coverOf(w: Wanted): string | undefined {
    if (!w.net) return undefined;
    for (const other of this.nets) if (cidrCovers(this.wanted.get(other)!.net!, w.net)) return other;
    return undefined;
  }

  /** Wanted CIDRs inside this one. */
  private inside(w: Wanted): string[] {
    if (!w.net) return [];
    return [...this.nets].filter((other) => cidrCovers(w.net!, this.wanted.get(other)!.net!));
  }

  /** What the kernel entry should be: the latest of the owners' expiries, tagged `cluster` when the cluster is one of them. */
  private entryOf(w: Wanted): { until: number; tag: Owner } {
    let until = 0;
    let tag: Owner = 'local';
    for (const [owner, u] of w.owners) {
      if (u > until) until = u;
      if (owner === 'cluster') tag = 'cluster';
    }
    return { until, tag };
  }

  /** Within the lifetime the kernel holds the wanted expiry; beyond it, a timeout renewed past half. */
  private timeoutFine(placedUntil: number, until: number, now: number): boolean {
    return until <= now + this.lifetimeMs ? Math.abs(placedUntil - until) <= RENEW_SLACK_MS : placedUntil >= now + this.lifetimeMs / 2 && placedUntil !== Infinity;
  }

  /** Whether a single address's kernel entry is what its owners want (networks, which may cover others, are always looked at). */
  private settled(w: Wanted, now: number): boolean {
    if (w.net || !w.placed || w.owners.size === 0) return false;
    const { until, tag } = this.entryOf(w);
    return w.placed.tag === tag && this.timeoutFine(w.placed.until, until, now);
  }

  /** Removes what must go for one address; returns the addition it still needs, if any. */
  private async prepare(address: string, queue: Set<string>): Promise<Pending | null> {
    const w = this.wanted.get(address);
    if (!w) return null;
    if (w.owners.size === 0) {
      this.wanted.delete(address);
      this.families[w.target.family]--;
      this.nets.delete(address);
      if (w.placed) await this.firewall.remove(w.target);
      // CIDRs this one held go to the kernel themselves now.
      for (const other of this.inside(w)) queue.add(other);
      return null;
    }
    if (this.coverOf(w)) {
      // Enforced by the CIDR around it; the kernel would refuse it as an overlap.
      if (w.placed) await this.firewall.remove(w.target);
      w.placed = undefined;
      return null;
    }
    for (const other of this.inside(w)) {
      const o = this.wanted.get(other)!;
      if (!o.placed) continue;
      await this.firewall.remove(o.target);
      o.placed = undefined;
    }
    const { until, tag } = this.entryOf(w);
    const now = Date.now();
    const placed = w.placed;
    if (placed && placed.tag === tag && this.timeoutFine(placed.until, until, now)) return null;
    // A timeout or tag cannot be changed in place: the entry is replaced in one transaction
    // where the backend can (never missing between), else taken out and put back.
    const replace = !!placed && !!this.firewall.replace;
    if (placed && !replace) {
      await this.firewall.remove(w.target);
      w.placed = undefined;
    }
    const kernelUntil = Math.min(until, now + this.lifetimeMs);
    const ms = kernelUntil - now;
    if (ms <= 0) return null;
    return { w, add: { target: w.target, timeoutMs: ms, tag }, placed: { until: kernelUntil, tag }, ...(replace ? { replace } : {}) };
  }

  /**
   * Makes the kernel sets match: adds what is wanted and missing, removes entries nobody
   * wants. Untagged or cluster-tagged leftovers are removed; local-tagged ones, from an
   * earlier run of this agent, are left to their kernel timeout unless `dropLocal`.
   */
  async reconcile(options: { dropLocal?: boolean; inTurns?: boolean } = {}): Promise<{ added: number; removed: number }> {
    let added = 0;
    let removed = 0;
    // Listing a large set takes a while, and so does comparing 100,000 entries: both are done
    // outside the queue, a slice at a time, and claims meanwhile go in at once; what they
    // changed is left out of the comparison with the older listing.
    const changed = (this.changedSinceListing = new Set());
    const listed = new Map<4 | 6, FirewallEntry[]>();
    for (const family of [4, 6] as const)
      await this.firewall.list(family).then(
        (entries) => listed.set(family, entries),
        (err: unknown) => {
          // A family the host cannot block has no set; anything else is said, and that family waits for the next round.
          if ((err as { code?: string }).code !== 'ENOENT') this.onError(err, `the IPv${family} sets (listing)`);
        },
      );
    const unwanted: FirewallEntry[] = [];
    const placed = new Map<string, Wanted['placed']>();
    let done = 0;
    // In turns while the agent detects and reports (its periodic reconcile); at a start, when
    // nothing waits, at once: a start on 100,000 took 2-2.5 s longer in turns (bench:cluster).
    const slice = options.inTurns ? RECONCILE_SLICE : Infinity;
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
    for (const [family, entries] of listed) {
      const present = new Map<string, FirewallEntry>();
      for (const e of entries) {
        present.set(e.target.text, e);
        if (++done % slice === 0) await nextTurn();
      }
      for (const [address, e] of present) {
        if (++done % slice === 0) await nextTurn();
        if (this.wanted.has(address)) continue;
        if (e.tag === 'local' && !options.dropLocal) continue;
        // Trapped by the fast path a moment ago: its local claim is on the way.
        if (e.tag === undefined && this.trapped.has(address)) continue;
        unwanted.push(e);
      }
      for (const [address, w] of this.wanted) {
        if (++done % slice === 0) await nextTurn();
        if (w.target.family !== family) continue;
        const e = present.get(address);
        placed.set(address, e ? { until: e.expiresInSeconds === undefined ? Infinity : Date.now() + e.expiresInSeconds * 1000, tag: e.tag === 'local' || e.tag === 'cluster' ? e.tag : null } : undefined);
      }
    }
    await this.serial('*', async () => {
      this.changedSinceListing = null;
      for (const e of unwanted) {
        if (this.wanted.has(e.target.text) || changed.has(e.target.text) || (e.tag === undefined && this.trapped.has(e.target.text))) continue;
        await this.firewall.remove(e.target);
        removed++;
      }
      for (const [address, p] of placed) {
        const w = this.wanted.get(address);
        if (w && !changed.has(address)) w.placed = p;
      }
    });
    // Missing and mis-timed entries go through the normal path; the rest are not queued,
    // so a claim meanwhile does not wait behind 100,000 that need nothing.
    const now = Date.now();
    const syncs: Promise<void>[] = [];
    for (const [a, w] of this.wanted) {
      if (this.settled(w, now)) continue;
      if (!w.placed && !this.coverOf(w)) added++;
      syncs.push(this.sync(a));
    }
    await Promise.all(syncs);
    return { added, removed };
  }

  /**
   * A Firewall view for one owner, for code that speaks the Firewall interface (the
   * Responder, the sentry), with the backend's kernel fast path over the same sets.
   */
  view(owner: Owner): Firewall {
    return {
      name: this.firewall.name,
      setup: (_options?: SetupOptions) => Promise.resolve(),
      add: (target, timeoutMs) => this.claim(owner, target, Date.now() + timeoutMs),
      remove: (target) => this.release(owner, target),
      list: (family) => this.firewall.list(family),
      teardown: () => Promise.resolve(),
      ...(this.firewall.fastPath ? { fastPath: (settings: FastPathSettings) => this.fastPath(settings) } : {}),
    };
  }

  /**
   * The backend's fast path, trapping into these sets: each source it reports blocked is
   * remembered as in the kernel untagged until a claim retags it; its kernel timeout is
   * held to the entries' lifetime.
   */
  private fastPath(settings: FastPathSettings): FastPath {
    const held = (s: FastPathSettings): FastPathSettings => {
      const timeoutMs = Math.min(s.timeoutMs, this.lifetimeMs);
      return {
        ...s,
        timeoutMs,
        onProbe: (probe) => {
          if (probe.blockedInKernel) this.trappedInKernel(probe.source.text, Date.now() + timeoutMs);
          s.onProbe(probe);
        },
      };
    };
    const inner = this.firewall.fastPath!(held(settings));
    return {
      get protocols() {
        return inner.protocols;
      },
      start: () => inner.start(),
      reconfigure: (s) => inner.reconfigure(held(s)),
      sync: (targets) => inner.sync(targets),
      // An address an owner wants stays: only a trap nobody stands behind is undone.
      unblock: (source) => {
        this.trapped.delete(source.text);
        return this.wanted.has(source.text) ? Promise.resolve() : inner.unblock(source);
      },
      stop: () => inner.stop(),
      remove: () => inner.remove(),
    };
  }

  private trappedInKernel(address: string, until: number): void {
    const w = this.wanted.get(address);
    if (w) {
      // Claimed, its kernel update not made yet: the update replaces the trap's entry.
      w.placed ??= { until, tag: null };
      return;
    }
    if (this.trapped.size >= TRAPPED_MAX) this.trapped.delete(this.trapped.keys().next().value!);
    this.trapped.set(address, until);
  }
}
