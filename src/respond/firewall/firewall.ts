// The node firewall: one kernel set per address family, matched before conntrack and
// before any DNAT, so blocked sources are dropped for the host, NodePorts and pods alike.
// Adding or removing one address never rewrites a rule chain.
import type { Family } from '../../net/ip.js';

export interface FirewallEntry {
  /** Address or CIDR as the kernel lists it. */
  address: string;
  /** Seconds left before the kernel drops it, when it has a timeout. */
  expiresInSeconds?: number;
}

export interface Firewall {
  readonly name: 'nftables' | 'iptables';
  /** Creates the sets and the drop rules, replacing any left by an earlier run. */
  setup(): Promise<void>;
  /** Adds an address (or CIDR) for `timeoutMs`; adding one already there is not an error. */
  add(address: string, family: Family, timeoutMs: number): Promise<void>;
  /** Removes an address; one already gone (expired in the kernel) is not an error. */
  remove(address: string, family: Family): Promise<void>;
  list(family: Family): Promise<FirewallEntry[]>;
  /** Removes everything setup created, and nothing else. */
  teardown(): Promise<void>;
}

/** Kernel set timeouts are whole seconds; a block never gets less than it asked for. */
export function timeoutSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
