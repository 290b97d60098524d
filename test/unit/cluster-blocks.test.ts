// The agent's part of the node set for BlockedHosts (src/agent/cluster-blocks.ts), on the
// in-memory Firewall: what is in force is claimed until its latest expiry, a protected
// address is refused once, an expired one is forgotten, and a deleted one is unblocked here
// (the node's own block too) unless another BlockedHost still blocks it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterBlocks } from '../../src/agent/cluster-blocks.js';
import { emptyFacts, protectedChange, ProtectedSet } from '../../src/cluster/protected-set.js';
import type { BlockedHostObject } from '../../src/k8s/objects.js';
import { BlockSet } from '../../src/respond/firewall/block-set.js';
import { MemoryFirewall } from '../../src/respond/firewall/memory.js';

// The node set reckons kernel timeouts from the real clock: the BlockedHosts expire from now on.
const NOW = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();
const bh = (name: string, address: string, expiresAt?: number): BlockedHostObject => ({
  metadata: { name },
  spec: { address, source: 'detected', ...(expiresAt ? { expiresAt: iso(expiresAt) } : {}) },
});

class Cache {
  readonly objects = new Map<string, BlockedHostObject>();
  get = (name: string) => this.objects.get(name);
  list = () => [...this.objects.values()];
  put(o: BlockedHostObject): void {
    this.objects.set(o.metadata.name, o);
  }
}

async function setup() {
  let now = NOW;
  const fw = new MemoryFirewall(() => now);
  await fw.setup();
  const refused: string[] = [];
  const blocks = new ClusterBlocks(new BlockSet(fw, (err) => assert.fail(String(err))), (address, name, why) => refused.push(`${name} ${address} ${why}`));
  return { fw, blocks, refused, cache: new Cache(), tick: (ms: number) => (now += ms), now: () => now };
}

test('BlockedHosts in force are claimed, protected ones refused once, changes taken one at a time', async () => {
  const { fw, blocks, refused, cache, now } = await setup();
  const guard = new ProtectedSet({ ...emptyFacts(), nodes: ['10.0.0.5'] });
  cache.put(bh('a', '198.18.0.1', NOW + 3_600_000));
  cache.put(bh('node', '10.0.0.5'));
  cache.put(bh('net', '10.0.0.0/8'));
  assert.deepEqual(await blocks.enforce(cache, guard, now()), []);
  assert.ok(fw.blocks('198.18.0.1'));
  assert.ok(!fw.blocks('10.0.0.5'));
  assert.deepEqual(refused.sort(), ['net 10.0.0.0/8 nodes', 'node 10.0.0.5 nodes']);
  // Only what changed is looked at; a refusal is said once.
  cache.put(bh('b', '2001:db8::1'));
  blocks.changed('b');
  blocks.recheck();
  await blocks.enforce(cache, guard, now());
  assert.ok(fw.blocks('2001:db8::1'));
  assert.equal(refused.length, 2);
});

test('the latest expiry among the BlockedHosts of an address holds; an expired one is forgotten', async () => {
  const { fw, blocks, cache, tick, now } = await setup();
  const guard = new ProtectedSet(emptyFacts());
  cache.put(bh('short', '198.18.0.2', NOW + 60_000));
  cache.put(bh('long', '198.18.0.2', NOW + 600_000));
  await blocks.enforce(cache, guard, now());
  const [entry] = await fw.list(4);
  assert.equal(entry?.expiresInSeconds, 600);
  tick(61_000);
  await blocks.enforce(cache, guard, now());
  assert.ok(blocks.has('198.18.0.2') && fw.blocks('198.18.0.2'));
  tick(600_000);
  await blocks.enforce(cache, guard, now());
  assert.equal(blocks.has('198.18.0.2'), false);
});

test('a deleted BlockedHost is unblocked here, unless another still blocks its address', async () => {
  const { fw, blocks, cache, now } = await setup();
  const guard = new ProtectedSet(emptyFacts());
  cache.put(bh('one', '198.18.0.3'));
  cache.put(bh('two', '198.18.0.3'));
  cache.put(bh('solo', '198.18.0.4'));
  await blocks.enforce(cache, guard, now());
  cache.objects.delete('one');
  blocks.changed('one', '198.18.0.3');
  assert.deepEqual(await blocks.enforce(cache, guard, now()), [], 'two still blocks it');
  assert.ok(fw.blocks('198.18.0.3'));
  cache.objects.delete('solo');
  blocks.changed('solo', '198.18.0.4');
  assert.deepEqual(await blocks.enforce(cache, guard, now()), ['198.18.0.4'], 'the node\'s own block goes too');
  assert.ok(!fw.blocks('198.18.0.4'));
});

test("a change of the protected set looks again only at the BlockedHosts it can touch; they follow it both ways", async () => {
  const { fw, blocks, cache, now } = await setup();
  const looked: string[] = [];
  const counting = { get: (name: string) => (looked.push(name), cache.get(name)), list: () => cache.list() };
  for (let i = 0; i < 10_000; i++) cache.put(bh(`h${i}`, `198.18.${i >> 8}.${i & 255}`));
  cache.put(bh('net', '198.19.0.0/16'));
  cache.put(bh('pod', '10.244.1.7'));
  const before = new ProtectedSet({ ...emptyFacts(), pods: ['10.244.1.5'] });
  await blocks.enforce(counting, before, now());
  assert.ok(fw.blocks('10.244.1.7') && fw.blocks('198.19.0.0/16') && fw.blocks('198.18.0.9'));

  // A pod starts on 10.244.1.7 and another in the blocked network: their BlockedHosts and the
  // networks are looked at, not the 10,000 others.
  const after = new ProtectedSet({ ...emptyFacts(), pods: ['10.244.1.7', '198.19.4.4'] });
  looked.length = 0;
  blocks.recheck(protectedChange(before, after));
  await blocks.enforce(counting, after, now());
  assert.deepEqual(looked.sort(), ['net', 'pod']);
  assert.ok(!fw.blocks('10.244.1.7') && !fw.blocks('198.19.0.0/16'), 'a pod address and the network holding one are no longer blocked');
  assert.ok(fw.blocks('198.18.0.9'));

  // The pods go: the refused BlockedHosts are in force again.
  looked.length = 0;
  blocks.recheck(protectedChange(after, before));
  await blocks.enforce(counting, before, now());
  assert.deepEqual(looked.sort(), ['net', 'pod']);
  assert.ok(fw.blocks('10.244.1.7') && fw.blocks('198.19.0.0/16'));

  // A protected network came (a new Node's pod range): all of them.
  looked.length = 0;
  const range = new ProtectedSet({ ...emptyFacts(), pods: ['10.244.1.5'], podCidrs: ['198.18.0.0/24'] });
  blocks.recheck(protectedChange(before, range));
  await blocks.enforce(counting, range, now());
  assert.equal(looked.length, 10_002);
  assert.ok(!fw.blocks('198.18.0.9') && fw.blocks('198.18.1.9'));
});

test('a refused BlockedHost that is deleted is forgotten: later changes of the protected set do not look for it again', async () => {
  const { blocks, cache, now } = await setup();
  const looked: string[] = [];
  const counting = { get: (name: string) => (looked.push(name), cache.get(name)), list: () => cache.list() };
  const guard = new ProtectedSet({ ...emptyFacts(), pods: Array.from({ length: 1000 }, (_, i) => `10.244.${i >> 8}.${i & 255}`) });
  for (let i = 0; i < 1000; i++) cache.put(bh(`p${i}`, `10.244.${i >> 8}.${i & 255}`));
  await blocks.enforce(counting, guard, now());
  for (let i = 0; i < 1000; i++) {
    cache.objects.delete(`p${i}`);
    blocks.changed(`p${i}`, `10.244.${i >> 8}.${i & 255}`);
  }
  await blocks.enforce(counting, guard, now());
  looked.length = 0;
  const fewer = new ProtectedSet({ ...emptyFacts(), pods: ['10.244.0.0'] });
  blocks.recheck(protectedChange(guard, fewer));
  await blocks.enforce(counting, fewer, now());
  assert.deepEqual(looked, []);
});
