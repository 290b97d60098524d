// Addresses a cluster must never block, whatever a policy or a forged packet says: its
// nodes, pod and service CIDRs, the API server, the node's default gateway and DNS
// servers. A block of a CIDR that contains any of them is refused too.
import { readFile } from 'node:fs/promises';
import { IpTrie } from '../engine/ip-trie.js';
import { formatIp, parseCidr } from '../net/ip.js';

export interface ProtectedFacts {
  nodes: string[];
  podCidrs: string[];
  serviceCidrs: string[];
  apiServer: string[];
  gateways: string[];
  dns: string[];
}

export const emptyFacts = (): ProtectedFacts => ({ nodes: [], podCidrs: [], serviceCidrs: [], apiServer: [], gateways: [], dns: [] });

export class ProtectedSet {
  private readonly tries: [keyof ProtectedFacts, IpTrie][];

  constructor(readonly facts: ProtectedFacts) {
    this.tries = (Object.keys(facts) as (keyof ProtectedFacts)[]).map((k) => [
      k,
      new IpTrie(facts[k].filter((c) => parseCidr(c) !== null)),
    ]);
  }

  /** Why `address` (or CIDR) must not be blocked, or null when it may be. */
  reason(address: string): string | null {
    const cidr = parseCidr(address);
    if (!cidr) return 'not an address';
    for (const [kind, trie] of this.tries) if (trie.overlaps(cidr)) return kind;
    return null;
  }

  /** Every protected entry, for the engine's ignore list. */
  all(): string[] {
    return Object.values(this.facts).flat();
  }
}

/** Default gateways from /proc/net/route and /proc/net/ipv6_route. */
export async function readGateways(root = '/proc/net'): Promise<string[]> {
  const out: string[] = [];
  const v4 = await readFile(`${root}/route`, 'utf8').catch(() => '');
  for (const line of v4.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[1] !== '00000000' || f[2] === '00000000') continue;
    const n = parseInt(f[2]!, 16); // little-endian on the machines we run on
    out.push([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.'));
  }
  const v6 = await readFile(`${root}/ipv6_route`, 'utf8').catch(() => '');
  for (const line of v6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[0] !== '0'.repeat(32) || f[1] !== '00' || /^0+$/.test(f[4]!)) continue;
    out.push(formatIp(Uint8Array.from(Buffer.from(f[4]!, 'hex'))));
  }
  return out;
}

/** Nameservers from resolv.conf. */
export async function readDnsServers(path = '/etc/resolv.conf'): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!.replace(/%.*$/, ''))
    .filter((a) => parseCidr(a) !== null);
}
