// The addresses a cluster never blocks, directly: the facts it is given (nodes, pod and
// service CIDRs, API server, gateways, resolvers, the host's own interfaces) and the ranges
// no forged packet or BlockedHost may ever make it block.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtectedSet, emptyFacts, isAlwaysProtected } from '../../src/cluster/protected-set.js';

test('link-local, cloud metadata, loopback, multicast, unspecified and broadcast are always protected', () => {
  const p = new ProtectedSet(emptyFacts());
  for (const [address, why] of [
    ['169.254.169.254', 'cloud-metadata'],
    ['fd00:ec2::254', 'cloud-metadata'],
    ['168.63.129.16', 'cloud-metadata'],
    ['169.254.10.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['127.0.0.53', 'loopback'],
    ['::1', 'loopback'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['169.254.10.0/24', 'link-local'],
    ['169.254.0.0/16', 'cloud-metadata'],
  ] as const)
    assert.equal(p.reason(address), why, address);
  assert.equal(p.reason('192.0.2.1'), null);
  assert.equal(p.reason('2001:db8::1'), null);
  assert.ok(p.all().includes('169.254.0.0/16'), 'the engine ignores them too');
  assert.ok(isAlwaysProtected('fe80::1') && !isAlwaysProtected('198.18.0.53'));
});

test('the host\'s own interface addresses, gateways and resolvers are protected', () => {
  const p = new ProtectedSet({ ...emptyFacts(), hostAddresses: ['192.0.2.10'], gateways: ['198.18.0.254'], dns: ['198.18.0.53'] });
  assert.equal(p.reason('192.0.2.10'), 'hostAddresses');
  assert.equal(p.reason('198.18.0.254'), 'gateways');
  assert.equal(p.reason('198.18.0.53'), 'dns');
  assert.equal(p.reason('198.18.0.0/24'), 'gateways', 'a CIDR holding one');
});

test('a protected address, or a CIDR containing one, is refused', () => {
  const p = new ProtectedSet({ ...emptyFacts(), nodes: ['10.0.0.5'], podCidrs: ['10.244.0.0/16'], dns: ['2001:db8::53'] });
  assert.equal(p.reason('10.0.0.5'), 'nodes');
  assert.equal(p.reason('10.244.3.4'), 'podCidrs');
  assert.equal(p.reason('10.0.0.0/8'), 'nodes');
  assert.equal(p.reason('0.0.0.0/0'), 'cloud-metadata', 'everything contains an always-protected range first');
  assert.equal(p.reason('2001:db8::/64'), 'dns');
  assert.equal(p.reason('192.0.2.1'), null);
});
