// The cluster's part of the node set: every BlockedHost in force, not protected, claimed by
// the `cluster` owner of the BlockSet until the latest expiry among those that block its
// address. Fed one BlockedHost change at a time (a detection costs the same with 10,000 in
// force as with none); a change of the protected set looks again at the BlockedHosts it can
// touch (a pod's address: those of that address, the networks, the refused ones), all of
// them only when a protected network came.
import { BlockedHostIndex, type BlockEntry } from '../cluster/blocked-host-index.js';
import { ExpiryHeap } from '../cluster/expiry-heap.js';
import type { ProtectedSet } from '../cluster/protected-set.js';
import { blockEntryOf, type BlockedHostObject } from '../k8s/objects.js';
import { addressOrNetworkOf, isNetwork, type AddressOrNetwork } from '../net/address.js';
import type { BlockSet } from '../respond/firewall/block-set.js';

/** The BlockedHosts as the agent's watch cache holds them. */
export interface BlockedHostSource {
  get(name: string): BlockedHostObject | undefined;
  list(): readonly BlockedHostObject[];
}

export class ClusterBlocks {
  /** The BlockedHosts this node enforces, by name and by address. */
  private readonly index = new BlockedHostIndex();
  /** Their names by expiry: the expired ones are found without a pass over all of them. */
  private readonly expiries = new ExpiryHeap();
  /** BlockedHosts changed since the last enforce. */
  private readonly touched = new Set<string>();
  /** Addresses whose BlockedHost was deleted since the last enforce. */
  private readonly deleted = new Set<string>();
  private recheckAll = true;
  /** Protected addresses already refused (said once). */
  private readonly refused = new Set<string>();
  /** BlockedHosts refused as protected: what a protection taken away may let in. */
  private readonly refusedNames = new Set<string>();
  /** BlockedHosts in force whose target is a network: what a newly protected address may fall in. */
  private readonly networks = new Set<string>();

  constructor(
    private readonly blockSet: BlockSet,
    private readonly onRefused: (address: string, blockedHost: string, why: string) => void,
  ) {}

  /** A BlockedHost changed (its watch event); `deletedAddress` when it was deleted. */
  changed(name: string, deletedAddress?: string | null): void {
    this.touched.add(name);
    if (deletedAddress) this.deleted.add(deletedAddress);
  }

  /**
   * The protected set changed: the BlockedHosts it can touch are looked at again, at the next
   * enforce. Without the change, or when a protected network came, all of them.
   */
  recheck(change?: { added: readonly string[]; removed: readonly string[] }): void {
    if (!change) {
      this.recheckAll = true;
      return;
    }
    if (change.removed.length) for (const name of this.refusedNames) this.touched.add(name);
    if (!change.added.length) return;
    for (const entry of change.added) {
      const target = addressOrNetworkOf(entry);
      if (!target || isNetwork(target)) {
        this.recheckAll = true;
        return;
      }
      for (const name of this.index.namesAt(target.text)) this.touched.add(name);
    }
    for (const name of this.networks) this.touched.add(name);
  }

  /** Whether some BlockedHost in force blocks `address` here. */
  has(address: string): boolean {
    return this.index.has(address);
  }

  /**
   * Makes the cluster owner's claims equal to the BlockedHosts in force; those whose expiry
   * came are forgotten (their kernel entries time out by themselves). Returns the addresses
   * whose BlockedHost was deleted and that no other BlockedHost blocks: deleting one
   * unblocks it everywhere, the node's own block included.
   */
  async enforce(source: BlockedHostSource, guard: ProtectedSet, now: number): Promise<string[]> {
    const names = new Set(this.touched);
    this.touched.clear();
    if (this.recheckAll) {
      this.recheckAll = false;
      for (const name of this.index.names()) names.add(name);
      for (const bh of source.list()) names.add(bh.metadata.name);
    }
    const targets = new Map<string, AddressOrNetwork>();
    const put = (name: string, entry: BlockEntry | undefined) => {
      const before = this.index.set(name, entry);
      if (entry && entry.expiresAt !== before?.expiresAt) {
        this.expiries.push(name, entry.expiresAt);
        this.expiries.compact(this.index.size, (n) => this.index.get(n)?.expiresAt);
      }
      if (before?.target) targets.set(before.target.text, before.target);
      if (entry?.target) targets.set(entry.target.text, entry.target);
    };
    for (const name of names) {
      this.refusedNames.delete(name);
      const entry = this.wanted(source.get(name), guard, now);
      if (entry?.target && isNetwork(entry.target)) this.networks.add(name);
      else this.networks.delete(name);
      put(name, entry);
    }
    for (const { name } of this.expiries.expired(now)) if ((this.index.get(name)?.expiresAt ?? Infinity) <= now) put(name, undefined);
    const changes: Promise<void>[] = [];
    for (const [address, target] of targets)
      changes.push(this.index.has(address) ? this.blockSet.claim('cluster', target, this.index.until(address)) : this.blockSet.release('cluster', target));
    await Promise.all(changes);
    const lifted = [...this.deleted].filter((address) => !this.index.has(address));
    this.deleted.clear();
    return lifted;
  }

  /** What a BlockedHost asks of this node, or nothing (gone, expired, protected). */
  private wanted(bh: BlockedHostObject | undefined, guard: ProtectedSet, now: number): BlockEntry | undefined {
    if (!bh) return undefined;
    const entry = blockEntryOf(bh.spec);
    const address = entry.target?.text;
    if (!address || entry.expiresAt <= now) return undefined;
    const why = guard.reason(address);
    if (why) {
      this.refusedNames.add(bh.metadata.name);
      if (!this.refused.has(address)) {
        this.refused.add(address);
        this.onRefused(address, bh.metadata.name, why);
      }
      return undefined;
    }
    return entry;
  }
}
