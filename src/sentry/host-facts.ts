// What a host (the standalone sentry's, or an agent's node: it runs in the node's network
// namespace) must never block of its surroundings: default gateways, resolvers from its
// resolv.conf files, and its interfaces' addresses.
import { readFile } from 'node:fs/promises';
import { emptyFacts, ProtectedSet } from '../cluster/protected-set.js';
import { formatIp, parseCidr } from '../net/ip.js';
import { hostAddresses } from './host-addresses.js';

/** A host's resolv.conf files: its own, and systemd-resolved's list of its upstream servers. */
export const HOST_RESOLV_CONFS = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'];

export interface HostFacts {
  gateways: string[];
  dns: string[];
  addresses: string[];
}

export async function readHostFacts(resolvConfs: readonly string[]): Promise<HostFacts> {
  const dns = new Set<string>();
  for (const file of resolvConfs) for (const a of await readDnsServers(file)) dns.add(a);
  return { gateways: await readGateways(), dns: [...dns], addresses: hostAddresses() };
}

/** The always-protected ranges with the host's gateways, resolvers and addresses. */
export async function hostProtectedSet(resolvConfs: readonly string[] = HOST_RESOLV_CONFS): Promise<ProtectedSet> {
  const { gateways, dns, addresses } = await readHostFacts(resolvConfs);
  return new ProtectedSet({ ...emptyFacts(), gateways, dns, hostAddresses: addresses });
}

/** Default gateways from /proc/net/route and /proc/net/ipv6_route. */
export async function readGateways(root = '/proc/net'): Promise<string[]> {
  return (await readDefaultRoutes(root)).flatMap((r) => (r.gateway ? [r.gateway] : []));
}

/** The interfaces the default routes leave by (not loopback, where unreachable ones point). */
export async function readDefaultRouteInterfaces(root = '/proc/net'): Promise<string[]> {
  return [...new Set((await readDefaultRoutes(root)).map((r) => r.device).filter((d) => d !== 'lo'))];
}

/** IPv4 and IPv6 default routes: interface, and gateway when there is one. */
async function readDefaultRoutes(root: string): Promise<{ device: string; gateway?: string }[]> {
  const out: { device: string; gateway?: string }[] = [];
  const v4 = await readFile(`${root}/route`, 'utf8').catch(() => '');
  for (const line of v4.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[1] !== '00000000') continue;
    if (f[2] === '00000000') {
      out.push({ device: f[0]! });
      continue;
    }
    const n = parseInt(f[2]!, 16); // little-endian on the machines we run on
    out.push({ device: f[0]!, gateway: [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.') });
  }
  const v6 = await readFile(`${root}/ipv6_route`, 'utf8').catch(() => '');
  for (const line of v6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[0] !== '0'.repeat(32) || f[1] !== '00') continue;
    out.push({ device: f[9]!, ...(/^0+$/.test(f[4]!) ? {} : { gateway: formatIp(Uint8Array.from(Buffer.from(f[4]!, 'hex'))) }) });
  }
  return out;
}

/** Nameservers of a resolv.conf; a file that is not there names none. */
export async function readDnsServers(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!.replace(/%.*$/, ''))
    .filter((a) => parseCidr(a) !== null);
}
