// The node's uplinks, for the anti-spoofing rule: the interfaces its default routes leave by
// and those that hold one of the Nodes' addresses (InternalIP, ExternalIP: only this node's
// are on its interfaces). Every other interface (a CNI bridge, a pod's veth, a tunnel) is
// where workloads send from. Pure: the interfaces and addresses in, the names out.
import type { NetworkInterfaceInfo } from 'node:os';
import { normalizeIp } from '../net/ip.js';

export function uplinkInterfaces(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
  nodeAddresses: readonly string[],
  defaultRouteInterfaces: readonly string[],
): string[] {
  const nodes = new Set(nodeAddresses.map((a) => normalizeIp(a)));
  const out = new Set<string>();
  for (const [name, list] of Object.entries(interfaces)) {
    if (name === 'lo') continue;
    if (defaultRouteInterfaces.includes(name) || (list ?? []).some((i) => nodes.has(normalizeIp(i.address)))) out.add(name);
  }
  return [...out].sort();
}
