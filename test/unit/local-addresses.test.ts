// Whether a packet was addressed to this host: its own unicast addresses, in any form the
// kernel reports a destination (IPv4-mapped on a dual-stack socket), and nothing addressed
// to everyone (broadcast, multicast) or to another host.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalAddresses } from '../../src/detect/local-addresses.js';

const local = new LocalAddresses(['198.18.0.2', '127.0.0.1', '2001:db8::2', 'fe80::1:2', '::1']);

test('the host\'s own addresses, in any form', () => {
  for (const a of ['198.18.0.2', '::ffff:198.18.0.2', '127.0.0.1', '2001:db8::2', '2001:0db8:0:0:0:0:0:2', 'fe80::1:2', '::1']) assert.ok(local.has(a), a);
});

test('broadcast, multicast, another host, or no address at all: not this host', () => {
  for (const a of ['198.18.0.255', '255.255.255.255', '::ffff:198.18.0.255', '224.0.0.1', 'ff02::1', 'ff02::1:ff00:2', '198.18.0.3', '127.0.0.2', '2001:db8::3', '', 'x']) assert.ok(!local.has(a), a);
});

test('the raw reader\'s forms: IPv4 as a number, IPv6 as bytes in a record', () => {
  assert.ok(local.has4(((198 << 24) | (18 << 16) | 2) >>> 0));
  assert.ok(!local.has4(((198 << 24) | (18 << 16) | 255) >>> 0));
  const record = Buffer.alloc(40);
  Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).copy(record, 20);
  assert.ok(local.has6(record, 20));
  record[35] = 3;
  assert.ok(!local.has6(record, 20));
});
