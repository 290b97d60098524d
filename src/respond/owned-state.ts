// Everything one owner put in the host, found and removed by the same marks it was made
// with (owner.ts): its nftables table, or its iptables chain, jumps and ipsets; its blackhole
// routes; its hosts.deny lines. `flush` (the standalone sentry), `cleanup` (an agent
// instance) and `run --flush-on-exit` all come here, and nothing another owner made is touched.
import type { Family } from '../net/ip.js';
import type { Firewall } from './firewall/firewall.js';
import type { FirewallNames } from './firewall/owner.js';
import { IptablesFirewall } from './firewall/iptables.js';
import { NftablesFirewall } from './firewall/nftables.js';
import { removeHostsDenyLines } from './hosts-deny.js';
import { listBlackholeRoutes, removeBlackholeRoute } from './route.js';
import { runProgram } from './run-program.js';

export interface OwnedState {
  names: FirewallNames;
  /** The hosts.deny file the owner writes to, and where its lock goes. */
  hostsDeny?: { path: string; lockDir: string };
}

export interface Removed {
  /** "nftables table inet kube_portsentry", "iptables chain KUBE-PORTSENTRY and ipsets ..." */
  firewall: string[];
  routes: string[];
  hostsDenyLines: string[];
}

async function works(argv: string[]): Promise<boolean> {
  return runProgram(argv).then(
    () => true,
    () => false,
  );
}

/** Removes the owner's firewall objects of every backend but `keep`'s; says what there was. */
export async function removeOwnedFirewall(names: FirewallNames, keep?: Firewall['name']): Promise<string[]> {
  const removed: string[] = [];
  if (keep !== 'nftables' && (await works(['nft', 'list', 'table', 'inet', names.table]))) {
    await new NftablesFirewall('nft', names.table, names).teardown();
    removed.push(`nftables table inet ${names.table}`);
  }
  if (keep === 'iptables') return removed;
  const present = [];
  for (const set of [4, 6].map((f) => `${names.setPrefix}-v${f}`)) if (await works(['ipset', 'list', '-n', set])) present.push(set);
  const chain = (await works(['iptables', '-w', '-t', 'raw', '-S', names.chain])) || (await works(['ip6tables', '-w', '-t', 'raw', '-S', names.chain]));
  if (present.length || chain) {
    await new IptablesFirewall(names).teardown();
    removed.push(`iptables raw chain ${names.chain}${present.length ? ` and ipsets ${present.join(', ')}` : ''}`);
  }
  return removed;
}

export async function removeOwnedState(state: OwnedState): Promise<Removed> {
  const { names } = state;
  const removed: Removed = { firewall: await removeOwnedFirewall(names), routes: [], hostsDenyLines: [] };
  const mark = { metric: names.routeMetric };
  for (const family of [4, 6] as Family[]) {
    for (const route of await listBlackholeRoutes(family, mark).catch(() => [])) {
      await removeBlackholeRoute(route, mark);
      removed.routes.push(route.text);
    }
  }
  if (state.hostsDeny) removed.hostsDenyLines = await removeHostsDenyLines(state.hostsDeny.path, { lockDir: state.hostsDeny.lockDir });
  return removed;
}
