// The in-memory Firewall (src/respond/firewall/memory.ts) keeps the rules of the real
// backends its callers rely on, so the unit tests built on it mean what they say.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressOrNetworkOf } from '../../src/net/address.js';
import type { FirewallEntry } from '../../src/respond/firewall/firewall.js';
import { MemoryFirewall } from '../../src/respond/firewall/memory.js';

const at = (text: string) => addressOrNetworkOf(text)!;
/** A listing with each entry's target as its text. */
const listed = (entries: FirewallEntry[]) => entries.map(({ target, ...e }) => ({ address: target.text, ...e }));

test('timeouts by the given clock, a second add keeps the first timeout, removing one gone is no error', async () => {
  let now = 1_000_000;
  const fw = new MemoryFirewall(() => now);
  await assert.rejects(fw.add(at('198.18.0.1'), 1000), /setup not run/);
  await fw.setup();
  await fw.add(at('198.18.0.1'), 1500, 'local');
  await fw.add(at('198.18.0.1'), 60_000, 'cluster');
  assert.deepEqual(listed(await fw.list(4)), [{ address: '198.18.0.1', expiresInSeconds: 2, tag: 'local' }], 'kernel timeouts are whole seconds, rounded up');
  now += 2000;
  assert.deepEqual(await fw.list(4), []);
  assert.equal(fw.blocks('198.18.0.1'), false);
  await fw.remove(at('198.18.0.1'));
  await fw.add(at('2001:db8::/64'), Infinity);
  assert.ok(fw.blocks('2001:db8::7') && !fw.blocks('2001:db8:1::7'));
  assert.deepEqual(listed(await fw.list(6)), [{ address: '2001:db8::/64' }]);
});

test('networks may not overlap one another (interval sets), hosts inside them may; addMany is all or none', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  await fw.add(at('10.0.0.0/8'), Infinity);
  await fw.add(at('10.1.2.3'), Infinity);
  await assert.rejects(fw.add(at('10.1.0.0/16'), Infinity), /overlaps/);
  await assert.rejects(fw.addMany([{ target: at('192.0.2.1'), timeoutMs: Infinity }, { target: at('10.0.0.0/9'), timeoutMs: Infinity }]), /overlaps/);
  assert.equal(fw.blocks('192.0.2.1'), false, 'the batch failed as one');
  await assert.rejects(fw.add(at('198.18.0.1'), Infinity, 'Bad Tag'), /bad firewall tag/);
  await fw.setup({ keepEntries: true });
  assert.equal((await fw.list(4)).length, 2);
  await fw.setup();
  assert.equal((await fw.list(4)).length, 0);
});
