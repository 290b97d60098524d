// What an admin may block or unblock (pure): an address or a network, written exactly, and
// never one the sentry must not block.
import { IpTrie } from '../net/ip-trie.js';
import type { ProtectedSet } from '../cluster/protected-set.js';
import { formatCidr, parseCidr } from '../net/ip.js';
import { canonicalTarget } from './entry.js';

export type Target = { ok: true; address: string } | { ok: false; problem: string };

/** Parses ADDR or CIDR as given on the command line. */
export function parseTarget(text: string): Target {
  const cidr = parseCidr(text.trim());
  if (!cidr || text.trim() === '') return { ok: false, problem: `${JSON.stringify(text)} is not an IP address or CIDR` };
  const slash = text.indexOf('/');
  if (slash >= 0 && parseCidr(text.slice(0, slash))?.family === cidr.family) {
    // Host bits set (10.1.2.3/16) more likely mean a typo than the network: say which it is.
    const exact = parseCidr(`${text.slice(0, slash)}/${cidr.family === 4 ? 32 : 128}`)!;
    if (!exact.bytes.every((b, i) => b === cidr.bytes[i])) return { ok: false, problem: `${text} has host bits set: the network is ${formatCidr(cidr)}` };
  }
  return { ok: true, address: canonicalTarget(text.trim())! };
}

/** What the sentry never blocks: its host's addresses, the policy's ignore list, the protected set. */
export interface NeverBlocked {
  own: readonly string[];
  ignore: readonly string[];
  protected?: ProtectedSet;
}

/**
 * Why the sentry refuses to block `address` (one of the host's own addresses, an ignored
 * or protected one, or a network holding one), or null.
 */
export function blockRefusal(address: string, never: NeverBlocked): string | null {
  const inside = new IpTrie([address]);
  for (const own of never.own) if (inside.has(own)) return `${address} holds ${own}, an address of this host`;
  for (const ignored of never.ignore) {
    const cidr = parseCidr(ignored);
    if (cidr && inside.overlaps(cidr)) return `${address} overlaps ${ignored} of the policy's ignore list`;
  }
  const why = never.protected?.reason(address);
  if (why) return `${address} is protected (${why})`;
  return null;
}
