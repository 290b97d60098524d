// What an admin may block (src/blocks/target.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockRefusal, parseTarget } from '../../src/blocks/target.js';
import { emptyFacts, ProtectedSet } from '../../src/cluster/protected-set.js';
import { addressOrNetworkOf } from '../../src/net/address.js';

const at = (text: string) => addressOrNetworkOf(text)!;
/** The text of a parsed target, or its problem. */
const parsed = (text: string) => {
  const t = parseTarget(text);
  return t.ok ? { ok: true, address: t.target.text } : t;
};

test('targets: exact addresses and networks, clear errors, host bits named', () => {
  assert.deepEqual(parsed('198.18.0.7'), { ok: true, address: '198.18.0.7' });
  assert.deepEqual(parsed('198.18.0.7/32'), { ok: true, address: '198.18.0.7' });
  assert.deepEqual(parsed('2001:DB8::0:7'), { ok: true, address: '2001:db8::7' });
  assert.deepEqual(parsed('198.18.0.0/16'), { ok: true, address: '198.18.0.0/16' });
  assert.deepEqual(parsed('198.18.3.4/16'), { ok: false, problem: '198.18.3.4/16 has host bits set: the network is 198.18.0.0/16' });
  for (const bad of ['', 'host.example', '198.18.0.300', '198.18.0.0/33', '1.2.3.4; rm -rf /'])
    assert.deepEqual(parsed(bad), { ok: false, problem: `${JSON.stringify(bad)} is not an IP address or CIDR` });
  assert.deepEqual(parsed('::ffff:198.18.0.1'), { ok: true, address: '198.18.0.1' });
});

test('targets: the host\'s own addresses and the ignore list are never blocked', () => {
  const never = { own: ['198.18.0.2', '2001:db8::2'], ignore: ['127.0.0.0/8', '192.0.2.0/24'] };
  assert.equal(blockRefusal(at('198.18.0.9'), never), null);
  assert.match(blockRefusal(at('198.18.0.2'), never)!, /an address of this host/);
  assert.match(blockRefusal(at('198.18.0.0/24'), never)!, /holds 198.18.0.2/);
  assert.match(blockRefusal(at('127.0.0.1'), never)!, /overlaps 127.0.0.0\/8/);
  assert.match(blockRefusal(at('192.0.0.0/8'), never)!, /overlaps 192.0.2.0\/24/);
  assert.match(blockRefusal(at('0.0.0.0/0'), never)!, /holds 198.18.0.2/);
});

test('targets: an admin cannot block the host\'s gateway, resolvers or an always-protected range either', () => {
  const guard = new ProtectedSet({ ...emptyFacts(), gateways: ['198.18.0.254'], dns: ['198.18.0.53'] });
  const never = { own: ['198.18.0.2'], ignore: [], protected: guard };
  assert.equal(blockRefusal(at('198.18.0.9'), never), null);
  assert.equal(blockRefusal(at('198.18.0.254'), never), '198.18.0.254 is protected (gateways)');
  assert.equal(blockRefusal(at('198.18.0.53'), never), '198.18.0.53 is protected (dns)');
  assert.equal(blockRefusal(at('169.254.169.254'), never), '169.254.169.254 is protected (cloud-metadata)');
  assert.equal(blockRefusal(at('198.18.0.128/25'), never), '198.18.0.128/25 is protected (gateways)');
});
