// The nftables backend's reading of its set listings (src/respond/firewall/nftables.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNftSetJson } from '../../src/respond/firewall/nftables.js';

test('an nft JSON set listing parses: prefixes, timeouts and bare elements', () => {
  const nft =
    '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"name": "blocked4", "elem": [{"elem": {"val": {"prefix": {"addr": "10.9.0.0", "len": 16}}, "timeout": 60, "expires": 59}}, {"elem": {"val": "198.18.0.1", "timeout": 60, "expires": 58}}, "198.18.0.2"]}}]}';
  assert.deepEqual(parseNftSetJson(nft), [
    { address: '10.9.0.0/16', expiresInSeconds: 59 },
    { address: '198.18.0.1', expiresInSeconds: 58 },
    { address: '198.18.0.2' },
  ]);
});
