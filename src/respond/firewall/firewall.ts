// The node firewall: one kernel set per address family, matched before conntrack and
// before any DNAT, so blocked sources are dropped for the host, NodePorts and pods alike.
// Adding or removing one address never rewrites a rule chain.
import type { AddressOrNetwork } from '../../net/address.js';
import type { Family } from '../../net/ip.js';
import type { FastPath, FastPathSettings } from '../fast-path/fast-path.js';

export interface FirewallEntry {
  /** The address or network the kernel lists, parsed where the listing is read. */
  target: AddressOrNetwork;
  /** Seconds left before the kernel drops it, when it has a timeout. */
  expiresInSeconds?: number;
  /** Who added it (kept in the kernel as the element's comment), when known. */
  tag?: string;
}

export interface SetupOptions {
  /** Keep the sets' current entries (an agent restarting keeps blocks in force). */
  keepEntries?: boolean;
  /**
   * With keepEntries: leave an existing table's rules alone too, only adding what is missing
   * (an admin command while the sentry is stopped, whose fast-path rules stay in force).
   */
  keepRules?: boolean;
}

/** Additions per addMany call: one netlink datagram of about 50-100 KB. */
export const ADD_MANY_MAX = 1000;

/**
 * How the backends run a listing of a whole set: a full set (1,048,576 entries) prints
 * 100-150 MB of JSON, far past runProgram's default output limit.
 */
export const LISTING = { timeoutMs: 120_000, maxOutputBytes: 512 * 1024 * 1024 };

/** One addition, as `Firewall.add` takes it. */
export interface FirewallAdd {
  target: AddressOrNetwork;
  timeoutMs: number;
  tag?: string;
}

/**
 * Anti-spoofing for what the host's workloads send (the agent's, on by default): a packet
 * that comes in by an interface that is not an uplink (from a pod) with a source address
 * that routes out by an uplink (an outside address, another node's) is dropped before
 * anything else sees it, forwarded or for the host, and counted.
 */
export interface AntiSpoofing {
  /** Adds the rule (after setup), with no uplinks yet: nothing is dropped until setUplinks. */
  enableAntiSpoofing(): Promise<void>;
  /** Replaces the uplink interface names. */
  setUplinks(interfaces: string[]): Promise<void>;
  /** Packets the rule dropped since it was added. */
  spoofedDropped(): Promise<number>;
}

export interface Firewall {
  readonly name: 'nftables' | 'iptables' | 'memory';
  /** Present where the backend can drop forged workload traffic. */
  readonly antiSpoofing?: AntiSpoofing;
  /** Creates the sets and the drop rules, replacing any left by an earlier run (or keeping their entries). */
  setup(options?: SetupOptions): Promise<void>;
  /**
   * Adds an address or network for `timeoutMs` (Infinity: until removed), labelled with
   * `tag`; adding one already there is not an error and keeps its timeout.
   */
  add(target: AddressOrNetwork, timeoutMs: number, tag?: string): Promise<void>;
  /**
   * Up to ADD_MANY_MAX additions at once: rebuilding a set of 100,000 after a restart would
   * otherwise take 100,000 round trips. On failure any of them may be in or not (nftables
   * applies all or none); adding again is no error.
   */
  addMany?(adds: FirewallAdd[]): Promise<void>;
  /** Removes an address or network; one already gone (expired in the kernel) is not an error. */
  remove(target: AddressOrNetwork): Promise<void>;
  /**
   * Puts an entry in place of the one already there (a new timeout or tag) in one
   * transaction, so the packet path never sees it missing; one already gone is added.
   * Without it, callers remove and add.
   */
  replace?(add: FirewallAdd): Promise<void>;
  list(family: Family): Promise<FirewallEntry[]>;
  /** Removes everything setup created, and nothing else. */
  teardown(): Promise<void>;
  /** The kernel fast path over this firewall's table, for a backend that offers it (nftables). */
  fastPath?(settings: FastPathSettings): FastPath;
}

/** Kernel set timeouts are whole seconds; a block never gets less than it asked for. */
export function timeoutSeconds(ms: number): number {
  if (!Number.isFinite(ms)) return 0;
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Tags are short words; anything else never reaches a firewall command line. */
export function checkTag(tag: string | undefined): string | undefined {
  if (tag !== undefined && !/^[a-z][a-z0-9-]{0,31}$/.test(tag)) throw new Error(`bad firewall tag ${JSON.stringify(tag)}`);
  return tag;
}
