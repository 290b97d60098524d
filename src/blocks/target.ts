// What an admin may block or unblock (pure): an address or a network, written exactly, and
// never one the sentry must not block.
import { IpTrie } from '../net/ip-trie.js';
import type { ProtectedSet } from '../cluster/protected-set.js';
import { addressOrNetworkOf, isNetwork, prefixOf, type AddressOrNetwork } from '../net/address.js';
import { parseCidr, parseIp } from '../net/ip.js';

export type Target = { ok: true; target: AddressOrNetwork } | { ok: false; problem: string };

/** Parses ADDR or CIDR as given on the command line. */
export function parseTarget(text: string): Target {
  const target = text.trim() === '' ? null : addressOrNetworkOf(text.trim());
  if (!target) return { ok: false, problem: `${JSON.stringify(text)} is not an IP address or CIDR` };
  const slash = text.indexOf('/');
  const given = slash >= 0 && isNetwork(target) ? parseIp(text.slice(0, slash)) : null;
  // Host bits set (10.1.2.3/16) more likely mean a typo than the network: say which it is.
  if (given?.family === target.family && !given.bytes.every((b, i) => b === target.bytes[i]))
    return { ok: false, problem: `${text} has host bits set: the network is ${target.text}` };
  return { ok: true, target };
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
export function blockRefusal(target: AddressOrNetwork, never: NeverBlocked): string | null {
  const address = target.text;
  const inside = IpTrie.of([{ family: target.family, bytes: target.bytes, prefix: prefixOf(target) }]);
  for (const own of never.own) if (inside.has(own)) return `${address} holds ${own}, an address of this host`;
  for (const ignored of never.ignore) {
    const cidr = parseCidr(ignored);
    if (cidr && inside.overlaps(cidr)) return `${address} overlaps ${ignored} of the policy's ignore list`;
  }
  const why = never.protected?.reason(address);
  if (why) return `${address} is protected (${why})`;
  return null;
}
