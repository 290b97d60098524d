// The nftables backend's reading of its set listings (src/respond/firewall/nftables.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FirewallEntry } from '../../src/respond/firewall/firewall.js';
import { addressOrNetworkOf } from '../../src/net/address.js';
import { elementsOf, parseNftSetJson } from '../../src/respond/firewall/nftables.js';

/** Entries with each parsed target as its text. */
const listed = (entries: FirewallEntry[]) => entries.map(({ target, ...e }) => ({ address: target.text, ...e }));

test('an nft JSON set listing parses: prefixes, timeouts and bare elements', () => {
  const nft =
    '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"name": "blocked4", "elem": [{"elem": {"val": {"prefix": {"addr": "10.9.0.0", "len": 16}}, "timeout": 60, "expires": 59}}, {"elem": {"val": "198.18.0.1", "timeout": 60, "expires": 58}}, "198.18.0.2"]}}]}';
  assert.deepEqual(listed(parseNftSetJson(nft)), [
    { address: '10.9.0.0/16', expiresInSeconds: 59 },
    { address: '198.18.0.1', expiresInSeconds: 58 },
    { address: '198.18.0.2' },
  ]);
});

test('a listing is parsed where it is read: a network keeps its prefix, a range (never ours) is left out', () => {
  const nft = '{"nftables": [{"set": {"name": "blockednet4", "elem": [{"prefix": {"addr": "10.9.0.0", "len": 16}}, {"range": ["10.0.0.1", "10.0.0.9"]}]}}]}';
  const [net, ...rest] = parseNftSetJson(nft);
  assert.deepEqual(rest, []);
  assert.deepEqual(net?.target, { text: '10.9.0.0/16', family: 4, bytes: new Uint8Array([10, 9, 0, 0]), prefix: 16 });
});

test('set elements come from the target\'s bytes: an address alone, a network as start and end past it', () => {
  assert.deepEqual(elementsOf(addressOrNetworkOf('198.18.0.1')!), { start: new Uint8Array([198, 18, 0, 1]) });
  assert.deepEqual(elementsOf(addressOrNetworkOf('10.9.0.0/16')!), { start: new Uint8Array([10, 9, 0, 0]), end: new Uint8Array([10, 10, 0, 0]) });
  assert.deepEqual(elementsOf(addressOrNetworkOf('255.255.255.0/24')!), { start: new Uint8Array([255, 255, 255, 0]), end: null });
});
