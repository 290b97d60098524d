// Addresses a host or a cluster must never block, whatever a policy, a forged packet, an
// admin or a manual BlockedHost says: ranges no real scanner comes from or that would cut a
// host off (loopback, link-local with the cloud metadata services, multicast, unspecified,
// broadcast), the host's gateways, resolvers and own interface addresses, and in a cluster
// its nodes, pod CIDRs and running pods' addresses, service CIDRs and the API server. A
// block of a CIDR that contains any of them is refused too. Pure: the facts are read elsewhere (the standalone sentry reads
// its host's, the agent its node's and the cluster's, the operator the cluster's).
import { IpTrie } from '../net/ip-trie.js';
import { parseCidr } from '../net/ip.js';

export interface ProtectedFacts {
  nodes: string[];
  podCidrs: string[];
  /** Addresses of running pods not on the host network (whatever range the CNI took them from). */
  pods: string[];
  serviceCidrs: string[];
  apiServer: string[];
  gateways: string[];
  dns: string[];
  /** Addresses of the node's own interfaces (bridges and tunnels included). */
  hostAddresses: string[];
}

export const emptyFacts = (): ProtectedFacts => ({ nodes: [], podCidrs: [], pods: [], serviceCidrs: [], apiServer: [], gateways: [], dns: [], hostAddresses: [] });

/** Always protected, by reason; the more specific first (metadata lives in link-local). */
export const ALWAYS_PROTECTED: Readonly<Record<string, readonly string[]>> = {
  // AWS, GCP, Azure, OpenStack and most clouds (169.254.169.254, AWS's IPv6 one), Azure's
  // wire server (its DNS, DHCP and load balancer health probes), Alibaba's.
  'cloud-metadata': ['169.254.169.254/32', 'fd00:ec2::254/128', '168.63.129.16/32', '100.100.100.200/32'],
  'link-local': ['169.254.0.0/16', 'fe80::/10'],
  loopback: ['127.0.0.0/8', '::1/128'],
  multicast: ['224.0.0.0/4', 'ff00::/8'],
  unspecified: ['0.0.0.0/32', '::/128'],
  broadcast: ['255.255.255.255/32'],
};

export class ProtectedSet {
  private readonly tries: [string, IpTrie][];

  constructor(readonly facts: ProtectedFacts) {
    const lists: [string, readonly string[]][] = [...Object.entries(ALWAYS_PROTECTED), ...Object.entries(facts)];
    this.tries = lists.map(([reason, list]) => [reason, new IpTrie(list.filter((c) => parseCidr(c) !== null))]);
  }

  /** Why `address` (or CIDR) must not be blocked, or null when it may be. */
  reason(address: string): string | null {
    const cidr = parseCidr(address);
    if (!cidr) return 'not an address';
    for (const [reason, trie] of this.tries) if (trie.overlaps(cidr)) return reason;
    return null;
  }

  /** Every protected entry, for the engine's ignore list. */
  all(): string[] {
    return [...Object.values(ALWAYS_PROTECTED).flat(), ...Object.values(this.facts).flat()];
  }
}

/** What a new protected set adds to and takes from an older one (entries of `all()`). */
export function protectedChange(before: ProtectedSet, after: ProtectedSet): { added: string[]; removed: string[] } {
  const old = new Set(before.all());
  const next = new Set(after.all());
  return { added: [...next].filter((e) => !old.has(e)), removed: [...old].filter((e) => !next.has(e)) };
}

let always: ProtectedSet | undefined;

/** Whether an address is in ALWAYS_PROTECTED (nobody needs to be told to protect it). */
export function isAlwaysProtected(address: string): boolean {
  return (always ??= new ProtectedSet(emptyFacts())).reason(address) !== null;
}
