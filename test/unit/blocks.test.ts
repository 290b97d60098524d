// The standalone sentry's block record, its reconcile decision and the admin's targets:
// pure rules, tested directly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalTarget, detectedEntry, engineBlock, parseRecord, renderRecord, RecordError, type BlockEntry } from '../../src/blocks/entry.js';
import { ADOPTED_REASON, reconcile, type HostActions, type HostState } from '../../src/blocks/reconcile.js';
import { blockRefusal, parseTarget } from '../../src/blocks/target.js';
import { emptyFacts, ProtectedSet } from '../../src/engine/protected-set.js';

const NOW = 1_800_000_000_000;
const entry = (address: string, until: number | null, over: Partial<BlockEntry> = {}): BlockEntry => ({
  address, origin: 'manual', reason: 'test', ports: [], types: [], since: NOW - 60_000, until, ...over,
});
const none: HostState = { kernel: [], routes: [], hostsDeny: [] };
const all: HostActions = { firewall: true, routes: true, hostsDenyLine: (e) => `ALL: ${e.address}` };

test('record: written and read back, every field checked', () => {
  const detected = detectedEntry(
    { source: '198.18.0.1', action: 'block', protocol: 'tcp', port: 79, mode: 'stealth', type: 'syn', verified: false, since: NOW, until: NOW + 3_600_000 },
    'TCP SYN/Normal scan', ['tcp/79', 'tcp/80'], ['syn'], 'stcp',
  );
  const entries = [detected, entry('2001:db8::/48', null, { reason: 'seen scanning' })];
  assert.deepEqual(parseRecord(renderRecord(entries), 'f'), entries);
  assert.deepEqual(engineBlock(detected), { source: '198.18.0.1', action: 'block', protocol: 'tcp', port: 79, mode: 'stealth', type: 'syn', verified: false, since: NOW, until: NOW + 3_600_000 });
  assert.equal(engineBlock(entries[1]!), null, 'a network or a manual block is held, not the engine\'s');
});

test('record: a damaged file is refused with file and field', () => {
  const bad = (blocks: unknown[]) => JSON.stringify({ version: 1, blocks });
  const good = { address: '198.18.0.1', origin: 'manual', reason: '', ports: [], types: [], since: 1, until: null };
  assert.throws(() => parseRecord('{', '/s/blocks.json'), /^RecordError: \/s\/blocks.json: not JSON/);
  assert.throws(() => parseRecord('[]', 'f'), /f: not a block record/);
  assert.throws(() => parseRecord(bad([{ ...good, address: 'x' }]), 'f'), /f: blocks\[0\]\.address: "x" is not an address or CIDR/);
  assert.throws(() => parseRecord(bad([good, { ...good, address: '198.18.0.1/32' }]), 'f'), /blocks\[1\]\.address: 198.18.0.1 is recorded twice/);
  assert.throws(() => parseRecord(bad([{ ...good, until: '1h' }]), 'f'), /blocks\[0\]\.until: must be a time/);
  assert.throws(() => parseRecord(bad([{ ...good, origin: 'x' }]), 'f'), /blocks\[0\]\.origin/);
  assert.throws(() => parseRecord(bad([{ ...good, probe: { protocol: 'tcp', port: 0 } }]), 'f'), /blocks\[0\]\.probe/);
  assert.throws(() => parseRecord(bad([{ ...good, ports: ['tcp/79; rm'] }]), 'f'), RecordError);
});

test('targets: exact addresses and networks, clear errors, host bits named', () => {
  assert.deepEqual(parseTarget('198.18.0.7'), { ok: true, address: '198.18.0.7' });
  assert.deepEqual(parseTarget('198.18.0.7/32'), { ok: true, address: '198.18.0.7' });
  assert.deepEqual(parseTarget('2001:DB8::0:7'), { ok: true, address: '2001:db8::7' });
  assert.deepEqual(parseTarget('198.18.0.0/16'), { ok: true, address: '198.18.0.0/16' });
  assert.deepEqual(parseTarget('198.18.3.4/16'), { ok: false, problem: '198.18.3.4/16 has host bits set: the network is 198.18.0.0/16' });
  for (const bad of ['', 'host.example', '198.18.0.300', '198.18.0.0/33', '1.2.3.4; rm -rf /'])
    assert.deepEqual(parseTarget(bad), { ok: false, problem: `${JSON.stringify(bad)} is not an IP address or CIDR` });
  assert.equal(canonicalTarget('::ffff:198.18.0.1'), '198.18.0.1');
});

test('targets: the host\'s own addresses and the ignore list are never blocked', () => {
  const never = { own: ['198.18.0.2', '2001:db8::2'], ignore: ['127.0.0.0/8', '192.0.2.0/24'] };
  assert.equal(blockRefusal('198.18.0.9', never), null);
  assert.match(blockRefusal('198.18.0.2', never)!, /an address of this host/);
  assert.match(blockRefusal('198.18.0.0/24', never)!, /holds 198.18.0.2/);
  assert.match(blockRefusal('127.0.0.1', never)!, /overlaps 127.0.0.0\/8/);
  assert.match(blockRefusal('192.0.0.0/8', never)!, /overlaps 192.0.2.0\/24/);
  assert.match(blockRefusal('0.0.0.0/0', never)!, /holds 198.18.0.2/);
});

test('targets: an admin cannot block the host\'s gateway, resolvers or an always-protected range either', () => {
  const guard = new ProtectedSet({ ...emptyFacts(), gateways: ['198.18.0.254'], dns: ['198.18.0.53'] });
  const never = { own: ['198.18.0.2'], ignore: [], protected: guard };
  assert.equal(blockRefusal('198.18.0.9', never), null);
  assert.equal(blockRefusal('198.18.0.254', never), '198.18.0.254 is protected (gateways)');
  assert.equal(blockRefusal('198.18.0.53', never), '198.18.0.53 is protected (dns)');
  assert.equal(blockRefusal('169.254.169.254', never), '169.254.169.254 is protected (cloud-metadata)');
  assert.equal(blockRefusal('198.18.0.128/25', never), '198.18.0.128/25 is protected (gateways)');
});

test('reconcile: blocks in force stay with their time, missing pieces are put back', () => {
  const record = [entry('198.18.0.1', NOW + 600_000, { origin: 'detected' }), entry('198.18.9.0/24', null)];
  const plan = reconcile(NOW, record, none, all);
  assert.deepEqual(plan.keep, record);
  assert.deepEqual(plan.lifted, []);
  assert.deepEqual(plan.kernel.add.map((a) => [a.entry.address, a.timeoutMs]), [['198.18.0.1', 600_000], ['198.18.9.0/24', Infinity]]);
  assert.deepEqual(plan.routes.add, record);
  assert.deepEqual(plan.hostsDeny.add, record);
  const inPlace: HostState = {
    kernel: [{ address: '198.18.0.1', family: 4, expiresInSeconds: 600, tag: 'detected' }, { address: '198.18.9.0/24', family: 4, tag: 'manual' }],
    routes: ['198.18.0.1/32', '198.18.9.0/24'],
    hostsDeny: ['ALL: 198.18.0.1', 'ALL: 198.18.9.0/24'],
  };
  const again = reconcile(NOW, record, inPlace, all);
  assert.deepEqual([again.kernel, again.routes, again.hostsDeny], [{ add: [], remove: [] }, { add: [], remove: [] }, { add: [], remove: [] }], 'nothing to do');
});

test('reconcile: a block that expired while the sentry was down is lifted everywhere', () => {
  const record = [entry('198.18.0.1', NOW - 1), entry('198.18.0.2', NOW + 1)];
  const state: HostState = {
    kernel: [{ address: '198.18.0.1', family: 4, expiresInSeconds: 1, tag: 'detected' }, { address: '198.18.0.2', family: 4, expiresInSeconds: 1, tag: 'manual' }],
    routes: ['198.18.0.1', '198.18.0.2'],
    hostsDeny: ['ALL: 198.18.0.1', 'ALL: 198.18.0.2'],
  };
  const plan = reconcile(NOW, record, state, all);
  assert.deepEqual(plan.lifted.map((e) => e.address), ['198.18.0.1']);
  assert.deepEqual(plan.keep.map((e) => e.address), ['198.18.0.2']);
  assert.deepEqual(plan.kernel.remove.map((k) => k.address), ['198.18.0.1']);
  assert.deepEqual(plan.routes.remove, ['198.18.0.1']);
  assert.deepEqual(plan.hostsDeny.remove, ['ALL: 198.18.0.1']);
  assert.equal(reconcile(NOW, [entry('198.18.0.3', NOW)], none, all).lifted.length, 1, 'until is exclusive');
});

test('reconcile: stray entries of its own go; the fast path\'s kernel blocks are adopted', () => {
  const state: HostState = {
    kernel: [
      { address: '198.18.0.5', family: 4, expiresInSeconds: 3000, tag: 'detected' }, // the record lost it: stray
      { address: '198.18.0.6', family: 4, expiresInSeconds: 3000 }, // the kernel trap made it
      { address: '2001:db8::6', family: 6, expiresInSeconds: 10 }, // the kernel trap made it
      { address: '198.18.0.7', family: 4 }, // no timeout, no tag: not the fast path's
      { address: '198.18.8.0/24', family: 4, expiresInSeconds: 5 }, // networks come only from the record
    ],
    routes: ['198.18.0.5'],
    hostsDeny: ['ALL: 198.18.0.5'],
  };
  const plan = reconcile(NOW, [], state, all);
  assert.deepEqual(plan.kernel.remove.map((k) => k.address), ['198.18.0.5', '198.18.0.7', '198.18.8.0/24']);
  assert.deepEqual(plan.adopted.map((e) => [e.address, e.until, e.reason]), [['198.18.0.6', NOW + 3_000_000, ADOPTED_REASON], ['2001:db8::6', NOW + 10_000, ADOPTED_REASON]]);
  assert.deepEqual(plan.keep, plan.adopted);
  assert.deepEqual(plan.kernel.add, [], 'adopted blocks are in the kernel already');
  assert.deepEqual(plan.routes, { add: plan.adopted, remove: ['198.18.0.5'] });
  assert.deepEqual(plan.hostsDeny, { add: plan.adopted, remove: ['ALL: 198.18.0.5'] });
});

test('reconcile: actions the policy turned off are taken out, actions it turned on put in', () => {
  const record = [entry('198.18.0.1', null)];
  const state: HostState = { kernel: [], routes: ['198.18.0.1'], hostsDeny: ['ALL: 198.18.0.1'] };
  const off = reconcile(NOW, record, state, { firewall: false, routes: false, hostsDenyLine: null });
  assert.deepEqual([off.kernel.add, off.routes, off.hostsDeny], [[], { add: [], remove: ['198.18.0.1'] }, { add: [], remove: ['ALL: 198.18.0.1'] }]);
  const changedLine = reconcile(NOW, record, state, { ...all, hostsDenyLine: (e) => `sshd: ${e.address}` });
  assert.deepEqual(changedLine.hostsDeny, { add: record, remove: ['ALL: 198.18.0.1'] });
  const noLine = reconcile(NOW, record, state, { ...all, hostsDenyLine: () => null });
  assert.deepEqual(noLine.hostsDeny, { add: [], remove: ['ALL: 198.18.0.1'] });
});
