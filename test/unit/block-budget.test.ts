import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockBudget } from '../../src/engine/block-budget.js';
import { fastPathBudgets } from '../../src/respond/fast-path/nftables-fast-path.js';

const takes = (b: BlockBudget, evidence: 'verified' | 'returning' | 'first', n: number, now = 0) => {
  let got = 0;
  for (let i = 0; i < n; i++) if (b.take(now, evidence)) got++;
  return got;
};

test('first-seen sources spend only the upper half of the unverified budget; returning ones the rest; verified ones a budget of their own', () => {
  const b = new BlockBudget(60, 0);
  assert.equal(takes(b, 'first', 100), 30);
  assert.equal(takes(b, 'verified', 100), 60, 'no unverified block spent any of it');
  assert.equal(takes(b, 'returning', 100), 30);
  assert.equal(takes(b, 'first', 100), 0);
  // A minute later all is back; the refill goes to whoever asks first, within their share.
  assert.equal(takes(b, 'first', 100, 60_000), 30);
  assert.equal(takes(b, 'returning', 100, 60_000), 30);
});

test('a budget of 1 keeps nothing back (the one token is anyone\'s), of 3 one token', () => {
  const one = new BlockBudget(1, 0);
  assert.equal(one.kept, 0);
  assert.equal(takes(one, 'first', 5), 1);
  const three = new BlockBudget(3, 0);
  assert.equal(takes(three, 'first', 5), 2);
  assert.equal(takes(three, 'returning', 5), 1);
});

test('reconfigured, the halves follow the new size', () => {
  const b = new BlockBudget(60, 0);
  b.configure(10);
  assert.equal(b.kept, 5);
  assert.equal(takes(b, 'first', 100), 5);
  assert.equal(takes(b, 'returning', 100), 5);
});

test('the kernel fast path\'s halves: first-seen and returning, each at least one', () => {
  assert.deepEqual(fastPathBudgets(60), { first: 30, returning: 30 });
  assert.deepEqual(fastPathBudgets(7), { first: 4, returning: 3 });
  assert.deepEqual(fastPathBudgets(1), { first: 1, returning: 1 });
});
