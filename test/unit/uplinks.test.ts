// The anti-spoofing rule's inputs, directly: which interfaces are the node's uplinks, which
// carry its default routes (from /proc/net files), and what the kernel counted.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { NetworkInterfaceInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { uplinkInterfaces } from '../../src/agent/uplinks.js';
import { checkInterfaceName, dropCounters } from '../../src/respond/firewall/nftables.js';
import { readDefaultRouteInterfaces, readGateways } from '../../src/sentry/host-facts.js';

const iface = (address: string): NetworkInterfaceInfo =>
  ({ address, netmask: '', family: address.includes(':') ? 'IPv6' : 'IPv4', mac: '', internal: false, cidr: null }) as NetworkInterfaceInfo;

test('uplinks: the default routes\' interfaces and those holding a Node address; never loopback, a CNI bridge or a pod\'s veth', () => {
  const interfaces = {
    lo: [iface('127.0.0.1'), iface('::1')],
    eth0: [iface('192.168.1.10'), iface('fe80::1')],
    eth1: [iface('10.0.0.10')],
    cni0: [iface('10.244.1.1')],
    veth1234: [iface('fe80::2')],
    'flannel.1': [iface('10.244.1.0')],
  };
  assert.deepEqual(uplinkInterfaces(interfaces, ['10.0.0.10', '10.0.0.11', '10.0.0.12'], ['eth0']), ['eth0', 'eth1']);
  assert.deepEqual(uplinkInterfaces(interfaces, ['::ffff:10.0.0.10'], []), ['eth1'], 'a mapped Node address is its IPv4 one');
  assert.deepEqual(uplinkInterfaces(interfaces, [], ['lo']), [], 'no uplink known: nothing will be dropped');
});

test('default routes from /proc/net: interfaces and gateways, IPv4 and IPv6, a route without gateway included', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kps-routes-'));
  await writeFile(join(dir, 'route'), [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'wg0\t00000000\t00000000\t0001\t0\t0\t100\t00000000\t0\t0\t0',
    'cni0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n'));
  await writeFile(join(dir, 'ipv6_route'), [
    `${'0'.repeat(32)} 00 ${'0'.repeat(32)} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth1`,
    `${'0'.repeat(32)} 00 ${'0'.repeat(32)} 00 ${'0'.repeat(32)} ffffffff 00000001 00000000 00200200       lo`,
    `20010db8000000000000000000000000 40 ${'0'.repeat(32)} 00 ${'0'.repeat(32)} 00000100 00000001 00000000 00000001     eth1`,
  ].join('\n'));
  try {
    assert.deepEqual(await readDefaultRouteInterfaces(dir), ['eth0', 'wg0', 'eth1']);
    assert.deepEqual(await readGateways(dir), ['192.168.1.1', 'fe80::1']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the dropping rules\' counters of an nft -j listing; interface names checked before a script', () => {
  const listing = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { rule: { expr: [{ match: {} }, { return: null }] } },
      { rule: { expr: [{ fib: {} }, { counter: { packets: 7, bytes: 420 } }, { drop: null }] } },
      { rule: { expr: [{ counter: { packets: 99, bytes: 1 } }, { accept: null }] } },
    ],
  });
  assert.equal(dropCounters(listing), 7);
  assert.equal(checkInterfaceName('flannel.1'), 'flannel.1');
  for (const bad of ['', 'a b', 'x"; flush ruleset', 'sixteen-chars-xx']) assert.throws(() => checkInterfaceName(bad), /bad interface name/);
});
