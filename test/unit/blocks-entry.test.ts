// The standalone sentry's block record (src/blocks/entry.ts): pure rules, tested directly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectedEntry, engineBlock, parseRecord, renderRecord, RecordError, type BlockEntry } from '../../src/blocks/entry.js';
import { addressOf, addressOrNetworkOf } from '../../src/net/address.js';

const NOW = 1_800_000_000_000;
const entry = (address: string, until: number | null, over: Partial<BlockEntry> = {}): BlockEntry => ({
  target: addressOrNetworkOf(address)!, origin: 'manual', reason: 'test', ports: [], types: [], since: NOW - 60_000, until, ...over,
});

test('record: written and read back, every field checked', () => {
  const detected = detectedEntry(
    { source: addressOf('198.18.0.1')!, action: 'block', protocol: 'tcp', port: 79, mode: 'stealth', type: 'syn', verified: false, since: NOW, until: NOW + 3_600_000 },
    'TCP SYN/Normal scan', ['tcp/79', 'tcp/80'], ['syn'], 'stcp',
  );
  const entries = [detected, entry('2001:db8::/48', null, { reason: 'seen scanning' })];
  assert.deepEqual(parseRecord(renderRecord(entries), 'f'), entries);
  assert.deepEqual(engineBlock(detected), { source: addressOf('198.18.0.1')!, action: 'block', protocol: 'tcp', port: 79, mode: 'stealth', type: 'syn', verified: false, since: NOW, until: NOW + 3_600_000 });
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
