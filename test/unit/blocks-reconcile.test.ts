// The reconcile decision at start (src/blocks/reconcile.ts).
import assert from 'node:assert/strict';
import { addressOrNetworkOf } from '../../src/net/address.js';
import { test } from 'node:test';
import type { BlockEntry } from '../../src/blocks/entry.js';
import { ADOPTED_REASON, reconcile, type HostActions, type HostState } from '../../src/blocks/reconcile.js';

const NOW = 1_800_000_000_000;
const at = (text: string) => addressOrNetworkOf(text)!;
const entry = (address: string, until: number | null, over: Partial<BlockEntry> = {}): BlockEntry => ({
  target: at(address), origin: 'manual', reason: 'test', ports: [], types: [], since: NOW - 60_000, until, ...over,
});
const none: HostState = { kernel: [], routes: [], hostsDeny: [] };
const all: HostActions = { firewall: true, routes: true, hostsDenyLine: (e) => `ALL: ${e.target.text}` };

test('reconcile: blocks in force stay with their time, missing pieces are put back', () => {
  const record = [entry('198.18.0.1', NOW + 600_000, { origin: 'detected' }), entry('198.18.9.0/24', null)];
  const plan = reconcile(NOW, record, none, all);
  assert.deepEqual(plan.keep, record);
  assert.deepEqual(plan.lifted, []);
  assert.deepEqual(plan.kernel.add.map((a) => [a.entry.target.text, a.timeoutMs]), [['198.18.0.1', 600_000], ['198.18.9.0/24', Infinity]]);
  assert.deepEqual(plan.routes.add, record);
  assert.deepEqual(plan.hostsDeny.add, record);
  const inPlace: HostState = {
    kernel: [{ target: at('198.18.0.1'), expiresInSeconds: 600, tag: 'detected' }, { target: at('198.18.9.0/24'), tag: 'manual' }],
    routes: [at('198.18.0.1/32'), at('198.18.9.0/24')],
    hostsDeny: ['ALL: 198.18.0.1', 'ALL: 198.18.9.0/24'],
  };
  const again = reconcile(NOW, record, inPlace, all);
  assert.deepEqual([again.kernel, again.routes, again.hostsDeny], [{ add: [], remove: [] }, { add: [], remove: [] }, { add: [], remove: [] }], 'nothing to do');
});

test('reconcile: a block that expired while the sentry was down is lifted everywhere', () => {
  const record = [entry('198.18.0.1', NOW - 1), entry('198.18.0.2', NOW + 1)];
  const state: HostState = {
    kernel: [{ target: at('198.18.0.1'), expiresInSeconds: 1, tag: 'detected' }, { target: at('198.18.0.2'), expiresInSeconds: 1, tag: 'manual' }],
    routes: [at('198.18.0.1'), at('198.18.0.2')],
    hostsDeny: ['ALL: 198.18.0.1', 'ALL: 198.18.0.2'],
  };
  const plan = reconcile(NOW, record, state, all);
  assert.deepEqual(plan.lifted.map((e) => e.target.text), ['198.18.0.1']);
  assert.deepEqual(plan.keep.map((e) => e.target.text), ['198.18.0.2']);
  assert.deepEqual(plan.kernel.remove.map((k) => k.target.text), ['198.18.0.1']);
  assert.deepEqual(plan.routes.remove.map((r) => r.text), ['198.18.0.1']);
  assert.deepEqual(plan.hostsDeny.remove, ['ALL: 198.18.0.1']);
  assert.equal(reconcile(NOW, [entry('198.18.0.3', NOW)], none, all).lifted.length, 1, 'until is exclusive');
});

test('reconcile: stray entries of its own go; the fast path\'s kernel blocks are adopted', () => {
  const state: HostState = {
    kernel: [
      { target: at('198.18.0.5'), expiresInSeconds: 3000, tag: 'detected' }, // the record lost it: stray
      { target: at('198.18.0.6'), expiresInSeconds: 3000 }, // the kernel trap made it
      { target: at('2001:db8::6'), expiresInSeconds: 10 }, // the kernel trap made it
      { target: at('198.18.0.7') }, // no timeout, no tag: not the fast path's
      { target: at('198.18.8.0/24'), expiresInSeconds: 5 }, // networks come only from the record
    ],
    routes: [at('198.18.0.5')],
    hostsDeny: ['ALL: 198.18.0.5'],
  };
  const plan = reconcile(NOW, [], state, all);
  assert.deepEqual(plan.kernel.remove.map((k) => k.target.text), ['198.18.0.5', '198.18.0.7', '198.18.8.0/24']);
  assert.deepEqual(plan.adopted.map((e) => [e.target.text, e.until, e.reason]), [['198.18.0.6', NOW + 3_000_000, ADOPTED_REASON], ['2001:db8::6', NOW + 10_000, ADOPTED_REASON]]);
  assert.deepEqual(plan.keep, plan.adopted);
  assert.deepEqual(plan.kernel.add, [], 'adopted blocks are in the kernel already');
  assert.deepEqual(plan.routes, { add: plan.adopted, remove: [at('198.18.0.5')] });
  assert.deepEqual(plan.hostsDeny, { add: plan.adopted, remove: ['ALL: 198.18.0.5'] });
});

test('reconcile: actions the policy turned off are taken out, actions it turned on put in', () => {
  const record = [entry('198.18.0.1', null)];
  const state: HostState = { kernel: [], routes: [at('198.18.0.1')], hostsDeny: ['ALL: 198.18.0.1'] };
  const off = reconcile(NOW, record, state, { firewall: false, routes: false, hostsDenyLine: null });
  assert.deepEqual([off.kernel.add, off.routes, off.hostsDeny], [[], { add: [], remove: [at('198.18.0.1')] }, { add: [], remove: ['ALL: 198.18.0.1'] }]);
  const changedLine = reconcile(NOW, record, state, { ...all, hostsDenyLine: (e) => `sshd: ${e.target.text}` });
  assert.deepEqual(changedLine.hostsDeny, { add: record, remove: ['ALL: 198.18.0.1'] });
  const noLine = reconcile(NOW, record, state, { ...all, hostsDenyLine: () => null });
  assert.deepEqual(noLine.hostsDeny, { add: [], remove: ['ALL: 198.18.0.1'] });
});
