// The iptables/ipset backend's reading of its set listings (src/respond/firewall/iptables.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FirewallEntry } from '../../src/respond/firewall/firewall.js';
import { parseIpsetList } from '../../src/respond/firewall/iptables.js';

/** Entries with each parsed target as its text. */
const listed = (entries: FirewallEntry[]) => entries.map(({ target, ...e }) => ({ address: target.text, ...e }));

test('an ipset plain listing parses: addresses and networks with their timeouts, anything else left out', () => {
  const ipset = 'Name: kube-portsentry-v4\nType: hash:net\nHeader: family inet\nMembers:\n198.18.0.1 timeout 3599\n10.9.0.0/16 timeout 12\nnot-an-address\n';
  assert.deepEqual(listed(parseIpsetList(ipset)), [
    { address: '198.18.0.1', expiresInSeconds: 3599 },
    { address: '10.9.0.0/16', expiresInSeconds: 12 },
  ]);
});
