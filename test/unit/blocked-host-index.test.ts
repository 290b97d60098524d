// The BlockedHost index agent and operator share (src/cluster/blocked-host-index.ts):
// whatever the order of changes, by-address lookups agree with a plain list of entries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addressOrNetworkOf } from '../../src/net/address.js';
import { BlockedHostIndex, type BlockEntry } from '../../src/cluster/blocked-host-index.js';

const targetOf = (address: string | null) => (address === null ? null : addressOrNetworkOf(address)!);
const entry = (address: string | null, expiresAt = Infinity, source: BlockEntry['source'] = 'detected'): BlockEntry => ({ target: targetOf(address), source, expiresAt });

test('names per address, the latest expiry, counts by source, and removal', () => {
  const index = new BlockedHostIndex();
  index.set('a', entry('192.0.2.1', 1000));
  index.set('b', entry('192.0.2.1', 5000, 'manual'));
  index.set('c', entry(null));
  assert.equal(index.until('192.0.2.1'), 5000);
  assert.equal(index.first('192.0.2.1')?.expiresAt, 1000, 'the first indexed first');
  assert.deepEqual(index.counts, { detected: 2, manual: 1 });
  assert.deepEqual([...index.addresses()], ['192.0.2.1']);
  assert.equal(index.set('b', undefined)?.source, 'manual', 'the replaced entry is returned');
  assert.equal(index.until('192.0.2.1'), 1000);
  index.set('a', entry('198.51.100.0/24', 7));
  assert.equal(index.has('192.0.2.1'), false, 'an address no entry holds any more is gone');
  assert.equal(index.until('192.0.2.1'), 0);
  assert.equal(index.size, 2);
});

test('any sequence of sets agrees with a model of name to entry', () => {
  const addresses = ['192.0.2.1', '192.0.2.2', '2001:db8::1', null];
  const targets = addresses.map(targetOf);
  const change = fc.record({
    name: fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5'),
    entry: fc.option(fc.record({ target: fc.constantFrom(...targets), source: fc.constantFrom('detected' as const, 'manual' as const), expiresAt: fc.integer({ min: 0, max: 100 }) }), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(change, { maxLength: 60 }), (changes) => {
      const index = new BlockedHostIndex();
      const model = new Map<string, BlockEntry>();
      for (const { name, entry: e } of changes) {
        assert.deepEqual(index.set(name, e), model.get(name));
        if (e) model.set(name, e);
        else model.delete(name);
      }
      assert.equal(index.size, model.size);
      for (const address of addresses) {
        if (address === null) continue;
        const holding = [...model.values()].filter((e) => e.target?.text === address);
        assert.equal(index.has(address), holding.length > 0);
        assert.equal(index.until(address), Math.max(0, ...holding.map((e) => e.expiresAt)));
        assert.deepEqual([...index.holding(address)].map((e) => JSON.stringify(e)).sort(), holding.map((e) => JSON.stringify(e)).sort());
      }
      const values = [...model.values()];
      assert.deepEqual({ ...index.counts }, { detected: values.filter((e) => e.source === 'detected').length, manual: values.filter((e) => e.source === 'manual').length });
    }),
  );
});
