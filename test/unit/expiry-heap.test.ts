// The expiry heap (src/cluster/expiry-heap.ts): what expired by a time comes out earliest
// first and nothing else does, against a sorted list, for any mix of pushes and pops.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ExpiryHeap } from '../../src/cluster/expiry-heap.js';

test('expired(now) takes out exactly the entries due by now, earliest first; the rest stay', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 40 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 20 }), (steps) => {
      const heap = new ExpiryHeap();
      let model: { name: string; expiresAt: number }[] = [];
      let n = 0;
      for (const [pushes, now] of steps) {
        for (const at of pushes) {
          const name = `n${n++}`;
          heap.push(name, at);
          model.push({ name, expiresAt: at });
        }
        const got = [...heap.expired(now)].map((e) => e.expiresAt);
        const due = model.filter((e) => e.expiresAt <= now).map((e) => e.expiresAt).sort((a, b) => a - b);
        model = model.filter((e) => e.expiresAt > now);
        assert.deepEqual(got, due);
        assert.equal(heap.size, model.length);
      }
    }),
  );
});

test('an entry that never expires is not kept', () => {
  const heap = new ExpiryHeap();
  heap.push('manual', Infinity);
  heap.push('detected', 5);
  assert.equal(heap.size, 1);
  assert.deepEqual([...heap.expired(Number.MAX_VALUE)], [{ name: 'detected', expiresAt: 5 }]);
});

test('churn (a name re-dated or deleted again and again, far in the future) keeps the heap bounded, and what is current still comes out', () => {
  const heap = new ExpiryHeap();
  const current = new Map<string, number>();
  for (let i = 0; i < 100_000; i++) {
    const name = `bh-${i % 3}`;
    const at = 1e12 + i;
    current.set(name, at);
    heap.push(name, at);
    if (i % 7 === 0) current.delete('bh-2'); // deleted now and then: its entries go stale
    heap.compact(current.size, (n) => current.get(n));
  }
  assert.ok(heap.size <= 2 * 3 + 1024, `${heap.size} entries for ${current.size} names`);
  const due = [...heap.expired(2e12)].filter((e) => current.get(e.name) === e.expiresAt).map((e) => e.name).sort();
  assert.deepEqual(due, [...current.keys()].sort());
});
