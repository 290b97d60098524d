// Which of the nodes' own facts (gateways, resolvers, interface addresses, as each agent
// reports them) the operator protects for every node. One node's report is its word about
// itself: its agent already refuses to block those addresses there, and the operator must
// not let one node exempt an address everywhere (a compromised agent listing a scanner as
// its own address). An address two or more nodes report (a subnet's shared gateway, a
// resolver every node uses) is protected cluster-wide. Pure.
import type { ReportedHost } from './report.js';

/** Nodes that must report an address before it is protected on every node. */
export const SHARING_NODES = 2;

export function sharedHostFacts(byNode: Iterable<ReportedHost>): ReportedHost {
  const counts = { gateways: new Map<string, number>(), dns: new Map<string, number>(), addresses: new Map<string, number>() };
  for (const host of byNode)
    for (const kind of ['gateways', 'dns', 'addresses'] as const)
      for (const address of new Set(host[kind])) counts[kind].set(address, (counts[kind].get(address) ?? 0) + 1);
  const shared = (m: Map<string, number>) => [...m].filter(([, n]) => n >= SHARING_NODES).map(([a]) => a);
  return { gateways: shared(counts.gateways), dns: shared(counts.dns), addresses: shared(counts.addresses) };
}
