// The node set shared by the agent's owners (src/respond/firewall/block-set.ts), on the
// in-memory Firewall: an address stays while any owner wants it, for the longest claim;
// reconcile puts back what went missing and takes out what nobody wants.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockSet } from '../../src/respond/firewall/block-set.js';
import { MemoryFirewall } from '../../src/respond/firewall/memory.js';
import { addressOrNetworkOf } from '../../src/net/address.js';

const at = (text: string) => addressOrNetworkOf(text)!;

test('two owners of one address: it stays until both release it', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const errors: unknown[] = [];
  const set = new BlockSet(fw, (err) => errors.push(err));
  const hour = Date.now() + 3_600_000;
  await set.claim('local', at('198.18.0.1'), hour);
  await set.claim('cluster', at('198.18.0.1'), hour + 3_600_000);
  assert.ok(fw.blocks('198.18.0.1'));
  await set.release('local', at('198.18.0.1'));
  assert.ok(fw.blocks('198.18.0.1'), 'the cluster still wants it');
  await set.release('cluster', at('198.18.0.1'));
  assert.equal(fw.blocks('198.18.0.1'), false);
  assert.deepEqual(errors, []);
});

test('reconcile restores an entry removed behind its back and removes one nobody claimed', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const set = new BlockSet(fw, () => undefined);
  await set.claim('cluster', at('2001:db8::1'), Infinity);
  await fw.remove(at('2001:db8::1'));
  await fw.add(at('198.18.0.7'), 60_000, 'cluster');
  const { added, removed } = await set.reconcile();
  assert.equal(added, 1);
  assert.equal(removed, 1);
  assert.ok(fw.blocks('2001:db8::1') && !fw.blocks('198.18.0.7'));
});

test('a network inside a wanted network waits outside the kernel until the outer one is released', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const errors: unknown[] = [];
  const set = new BlockSet(fw, (err) => errors.push(err));
  await set.claim('cluster', at('10.0.0.0/8'), Infinity);
  await set.claim('local', at('10.1.0.0/16'), Infinity);
  assert.deepEqual((await fw.list(4)).map((e) => e.target.text), ['10.0.0.0/8']);
  await set.release('cluster', at('10.0.0.0/8'));
  assert.deepEqual((await fw.list(4)).map((e) => e.target.text), ['10.1.0.0/16']);
  assert.deepEqual(errors, []);
});

test('a claim that changes an entry\'s tag or timeout replaces it in place: never removed, never missing', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const set = new BlockSet(fw, () => undefined);
  const hour = Date.now() + 3_600_000;
  await set.claim('local', at('198.18.0.1'), hour);
  await set.claim('local', at('10.1.0.0/16'), hour);
  await set.claim('cluster', at('198.18.0.1'), hour + 3_600_000);
  await set.claim('cluster', at('10.1.0.0/16'), hour);
  assert.deepEqual(fw.calls.slice(1), ['add 198.18.0.1', 'add 10.1.0.0/16', 'replace 198.18.0.1', 'replace 10.1.0.0/16']);
  assert.deepEqual((await fw.list(4)).map((e) => [e.target.text, e.tag]), [['198.18.0.1', 'cluster'], ['10.1.0.0/16', 'cluster']]);
});

test("a claim made while reconcile lists the kernel set goes in at once, and what changed meanwhile is neither lost nor taken out", async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const errors: unknown[] = [];
  const set = new BlockSet(fw, (err) => errors.push(err));
  const hour = Date.now() + 3_600_000;
  await set.claim('cluster', at('198.18.0.5'), hour);
  // Listing a large set takes a while (nft -j): this one lists what was there, then waits.
  const list = fw.list.bind(fw);
  let listed!: () => void;
  const held = new Promise<void>((r) => (listed = r));
  fw.list = async (family) => {
    const entries = await list(family);
    await held;
    return entries;
  };
  const reconciled = set.reconcile();
  await new Promise((r) => setImmediate(r));
  const order: string[] = [];
  const claimed = set.claim('cluster', at('198.18.0.6'), hour).then(() => order.push('claimed'));
  const released = set.release('cluster', at('198.18.0.5')).then(() => order.push('released'));
  setTimeout(() => {
    order.push('listing done');
    listed();
  }, 300);
  await Promise.all([claimed, released, reconciled]);
  assert.deepEqual(order, ['claimed', 'released', 'listing done'], 'the claim and release waited for the listing');
  assert.ok(fw.blocks('198.18.0.6'), 'the claim made during the listing was taken out');
  assert.equal(fw.blocks('198.18.0.5'), false, 'the release made during the listing was undone');
  assert.deepEqual(errors, []);
});

test('reconcile compares 60,000 entries a slice at a time: the event loop turns meanwhile, and a claim made then is kept', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const errors: unknown[] = [];
  const set = new BlockSet(fw, (err) => errors.push(err));
  const hour = Date.now() + 3_600_000;
  const claims: Promise<void>[] = [];
  for (let i = 0; i < 60_000; i++) claims.push(set.claim('cluster', at(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`), hour));
  await Promise.all(claims);
  // The listing as the kernel gives it, at once: what follows is the comparison alone.
  const entries = await fw.list(4);
  fw.list = async (family) => (family === 4 ? entries : []);
  let turns = 0;
  let reconciling = true;
  const count = () => {
    turns++;
    if (reconciling) setImmediate(count);
  };
  setImmediate(count);
  let claimedDuring: Promise<void> | undefined;
  const reconciled = set.reconcile({ inTurns: true }).finally(() => (reconciling = false));
  setImmediate(() => setImmediate(() => (claimedDuring = set.claim('cluster', at('198.18.0.77'), hour))));
  const { removed } = await reconciled;
  await claimedDuring;
  // Three passes over 60,000 entries, a turn every 5,000.
  assert.ok(turns >= 30, `the event loop turned ${turns} times during the comparison`);
  assert.equal(removed, 0);
  assert.ok(fw.blocks('198.18.0.77') && fw.blocks('10.0.0.1'));
  assert.deepEqual(errors, []);
});
