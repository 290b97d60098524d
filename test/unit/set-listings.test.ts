// The kernel set listings the backends read back (src/respond/firewall/nftables.ts, iptables.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNftSetJson } from '../../src/respond/firewall/nftables.js';
import { parseIpsetList } from '../../src/respond/firewall/iptables.js';

test('kernel set listings parse (nft JSON, ipset plain)', () => {
  const nft =
    '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"name": "blocked4", "elem": [{"elem": {"val": {"prefix": {"addr": "10.9.0.0", "len": 16}}, "timeout": 60, "expires": 59}}, {"elem": {"val": "198.18.0.1", "timeout": 60, "expires": 58}}, "198.18.0.2"]}}]}';
  assert.deepEqual(parseNftSetJson(nft), [
    { address: '10.9.0.0/16', expiresInSeconds: 59 },
    { address: '198.18.0.1', expiresInSeconds: 58 },
    { address: '198.18.0.2' },
  ]);
  const ipset = 'Name: kube-portsentry-v4\nType: hash:net\nHeader: family inet\nMembers:\n198.18.0.1 timeout 3599\n10.9.0.0/16 timeout 12\n';
  assert.deepEqual(parseIpsetList(ipset), [
    { address: '198.18.0.1', expiresInSeconds: 3599 },
    { address: '10.9.0.0/16', expiresInSeconds: 12 },
  ]);
});
