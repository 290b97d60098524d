import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Probe } from '../../src/engine/probe.js';
import { Engine, engineConfig, type EngineConfig } from '../../src/engine/engine.js';
import { addressOf } from '../../src/net/address.js';
import { formatIp, parseCidr } from '../../src/net/ip.js';

const addr = (text: string) => addressOf(text)!;
import { compileDocument } from '../../src/policy/compiled.js';
import { defaultPolicy } from '../../src/policy/default.js';

function config(over: Partial<EngineConfig> = {}): EngineConfig {
  return { ...engineConfig(compileDocument(defaultPolicy())), ...over };
}

const clock = 1_000_000;
function probe(source: string, port: number, over: Partial<Probe> = {}): Probe {
  return { time: clock, protocol: 'tcp', mode: 'bind', source: addr(source), port, type: 'connect', verified: true, ...over };
}

test('trigger 0 blocks at the first probe, once per source while blocked', () => {
  const e = new Engine(config(), clock);
  const d = e.decide(probe('198.18.0.9', 79));
  assert.equal(d.kind, 'respond');
  assert.equal(d.kind === 'respond' && d.block.action, 'block');
  assert.equal(e.decide(probe('198.18.0.9', 80)).kind, 'suppressed');
  assert.equal(e.blocks.size, 1);
});

test('trigger 2: two distinct probes are counted, the third responds; repeats do not count', () => {
  const e = new Engine(config({ triggerCount: 2 }), clock);
  assert.equal(e.decide(probe('198.18.0.9', 1)).kind, 'counted');
  assert.equal(e.decide(probe('198.18.0.9', 1)).kind, 'counted', 'a repeat is not a new probe');
  assert.equal(e.decide(probe('198.18.0.9', 2)).kind, 'counted');
  assert.equal(e.decide(probe('198.18.0.9', 3)).kind, 'respond');
});

test('probes older than the window are forgotten', () => {
  const e = new Engine(config({ triggerCount: 1, windowMs: 10_000 }), clock);
  assert.equal(e.decide(probe('198.18.0.9', 1, { time: 0 })).kind, 'counted');
  assert.equal(e.decide(probe('198.18.0.9', 2, { time: 20_000 })).kind, 'counted');
  assert.equal(e.decide(probe('198.18.0.9', 3, { time: 25_000 })).kind, 'respond');
});

test('ignore list and own addresses, v4 and v6, are never counted', () => {
  const e = new Engine(config({ ignore: ['198.18.0.0/24', '2001:db8:1::/48'].map((c) => parseCidr(c)!) }), clock);
  e.setOwnAddresses(['198.19.0.1', '2001:db8:9::1']);
  assert.deepEqual(e.decide(probe('198.18.0.200', 1)), { kind: 'ignored', reason: 'ignore-list' });
  assert.deepEqual(e.decide(probe('2001:db8:1::7', 1)), { kind: 'ignored', reason: 'ignore-list' });
  assert.deepEqual(e.decide(probe('198.19.0.1', 1)), { kind: 'ignored', reason: 'own-address' });
  assert.deepEqual(e.decide(probe('2001:db8:9::1', 1)), { kind: 'ignored', reason: 'own-address' });
  assert.equal(e.decide(probe('2001:db8:2::7', 1)).kind, 'respond');
  assert.equal(e.trackedSources, 1);
});

test('per-protocol actions: alert, block, command', () => {
  const e = new Engine(config({ actions: { tcp: 'command', udp: 'alert' } }), clock);
  const udp = e.decide(probe('198.18.0.1', 7, { protocol: 'udp', type: 'udp', verified: false }));
  assert.deepEqual([udp.kind, udp.kind === 'alert' && udp.reason], ['alert', 'policy']);
  assert.equal(e.decide(probe('198.18.0.1', 9, { protocol: 'udp', type: 'udp', verified: false })).kind, 'suppressed');
  const tcp = e.decide(probe('198.18.0.2', 79));
  assert.equal(tcp.kind === 'respond' && tcp.block.action, 'command');
});

test('verifiedOnly: an unverified probe alerts instead of blocking', () => {
  const e = new Engine(config({ verifiedOnly: true, actions: { tcp: 'block', udp: 'block' } }), clock);
  const d = e.decide(probe('198.18.0.1', 7, { protocol: 'udp', type: 'udp', verified: false }));
  assert.deepEqual([d.kind, d.kind === 'alert' && d.reason], ['alert', 'unverified']);
  assert.equal(e.decide(probe('198.18.0.2', 79)).kind, 'respond');
});

test('the block rate limiter caps new blocks per minute and refills; first-seen sources spend only its upper half', () => {
  const e = new Engine(config({ maxBlocksPerMinute: 4 }), 0);
  const kinds = [];
  for (let i = 0; i < 5; i++) kinds.push(e.decide(probe(`198.18.1.${i}`, 79, { time: 0, verified: false, mode: 'stealth', type: 'syn' })).kind);
  assert.deepEqual(kinds, ['respond', 'respond', 'alert', 'alert', 'alert'], 'two of four for first-seen sources');
  // A refused source coming back takes from the half kept for returning sources.
  assert.equal(e.decide(probe('198.18.1.2', 80, { time: 1, verified: false, mode: 'stealth', type: 'syn' })).kind, 'respond');
  assert.equal(e.decide(probe('198.18.1.3', 80, { time: 1, verified: false, mode: 'stealth', type: 'syn' })).kind, 'respond');
  assert.equal(e.decide(probe('198.18.1.4', 80, { time: 1, verified: false, mode: 'stealth', type: 'syn' })).kind, 'suppressed', 'refused again: already answered');
  // 15 s later one token is back: the refused source is blocked on its next probe.
  assert.equal(e.decide(probe('198.18.1.4', 81, { time: 15_000, verified: false, mode: 'stealth', type: 'syn' })).kind, 'respond');
});

test('a flood of one-shot forged sources never keeps a verified or a returning scanner from being blocked', () => {
  const e = new Engine(config({ maxBlocksPerMinute: 60 }), 0);
  const forged = (i: number, time: number) => probe(formatIp(Uint8Array.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])), 7, { time, protocol: 'udp', type: 'udp', mode: 'stealth', verified: false });
  let blocked = 0;
  // Fifty new forged sources a second for ten minutes: more than the budget refills, all the time.
  for (let i = 0; i < 30_000; i++) if (e.decide(forged(i, i * 20)).kind === 'respond') blocked++;
  assert.ok(blocked <= 30 + 10 * 60, `${blocked} forged sources blocked: more than the upper half and its refill`);
  const now = 600_000;
  // A scanner that completes a handshake: its own budget.
  assert.equal(e.decide(probe('198.18.0.9', 2001, { time: now })).kind, 'respond');
  // A stealth scanner: refused at most once among the forged, blocked at its next probe.
  const syn = (port: number) => probe('198.18.0.10', port, { time: now, verified: false, mode: 'stealth', type: 'syn' });
  const first = e.decide(syn(1)).kind;
  if (first !== 'respond') assert.deepEqual([first, e.decide(syn(11)).kind], ['alert', 'respond']);
  assert.ok(e.blocks.has('198.18.0.10'));
  // And the next one-shot forged sources still find the upper half empty.
  assert.equal(e.decide(forged(40_000, now)).kind, 'alert');
});

test('a source refused by the block rate limit is answered once per window, and blocked once a token is back', () => {
  const e = new Engine(config({ maxBlocksPerMinute: 1 }), 0);
  assert.equal(e.decide(probe('198.18.1.1', 79, { time: 0, verified: false })).kind, 'respond');
  const first = e.decide(probe('198.18.1.2', 79, { time: 0, verified: false }));
  assert.deepEqual([first.kind, first.kind === 'alert' && first.reason], ['alert', 'rate-limited']);
  // Its later probes while the bucket is empty: no second alert (no log lines, no counts).
  const later = [80, 81, 79, 82].map((port, i) => e.decide(probe('198.18.1.2', port, { time: 1000 + i, verified: false })).kind);
  assert.deepEqual(later, ['suppressed', 'suppressed', 'suppressed', 'suppressed']);
  // 60 s later the token is back: its next probe is blocked.
  assert.equal(e.decide(probe('198.18.1.2', 83, { time: 60_000, verified: false })).kind, 'respond');
});

test('the kernel fast path\'s word stands: what it blocked is recorded without the engine\'s budget, what it refused is never blocked here', () => {
  const e = new Engine(config({ maxBlocksPerMinute: 1 }), 0);
  const fast = (source: string, over: Partial<Probe>) => probe(source, 1, { time: 0, verified: false, mode: 'stealth', type: 'syn', ...over });
  for (let i = 0; i < 3; i++) assert.equal(e.decide(fast(`198.18.2.${i}`, { blockedInKernel: true })).kind, 'respond');
  const refused = e.decide(fast('198.18.2.9', { refusedInKernel: true, time: 120_000 }));
  assert.deepEqual([refused.kind, refused.kind === 'alert' && refused.reason], ['alert', 'rate-limited'], 'a full bucket here changes nothing');
});

test('blocks expire after their duration, and the source must trip the trigger again', () => {
  const e = new Engine(config({ durationMs: 60_000, triggerCount: 1 }), 0);
  e.decide(probe('198.18.0.1', 1, { time: 0 }));
  assert.equal(e.decide(probe('198.18.0.1', 2, { time: 0 })).kind, 'respond');
  assert.deepEqual(e.expire(59_999), []);
  const lifted = e.expire(60_000);
  assert.deepEqual(lifted.map((b) => b.source.text), ['198.18.0.1']);
  assert.equal(e.blocks.size, 0);
  assert.equal(e.decide(probe('198.18.0.1', 3, { time: 61_000 })).kind, 'counted');
});

test('tracked sources are capped, least recently seen dropped first', () => {
  const e = new Engine(config({ maxTrackedSources: 100, triggerCount: 5 }), 0);
  for (let i = 0; i < 1000; i++) e.decide(probe(`198.18.${i >> 8}.${i & 255}`, 1, { time: i }));
  assert.equal(e.trackedSources, 100);
  assert.equal(e.evictedSources, 900);
});

test('idle sources are forgotten at expiry', () => {
  const e = new Engine(config({ triggerCount: 5, windowMs: 1000 }), 0);
  e.decide(probe('198.18.0.1', 1, { time: 0 }));
  e.decide(probe('198.18.0.2', 1, { time: 900 }));
  e.expire(1500);
  assert.equal(e.trackedSources, 1);
});

test('reconfigure keeps blocks in force', () => {
  const e = new Engine(config(), 0);
  e.decide(probe('198.18.0.1', 1));
  e.reconfigure(config({ triggerCount: 10 }));
  assert.equal(e.blocks.size, 1);
  assert.equal(e.decide(probe('198.18.0.2', 1)).kind, 'counted');
});

test('eviction drops the least recently seen source, not the first seen', () => {
  const e = new Engine(config({ maxTrackedSources: 2, triggerCount: 5 }), 0);
  e.decide(probe('198.18.0.1', 1, { time: 1 }));
  e.decide(probe('198.18.0.2', 1, { time: 2 }));
  e.decide(probe('198.18.0.1', 2, { time: 3 })); // .1 is now the most recent
  e.decide(probe('198.18.0.3', 1, { time: 4 })); // evicts .2
  const d1 = e.decide(probe('198.18.0.1', 3, { time: 5 }));
  assert.equal(d1.kind === 'counted' && d1.distinct, 3, '.1 kept its probes');
  assert.deepEqual([...(e.sourceState(addr('198.18.0.1'))?.probes.keys() ?? [])], ['tcp/1', 'tcp/2', 'tcp/3']);
  const d2 = e.decide(probe('198.18.0.2', 2, { time: 6 }));
  assert.equal(d2.kind === 'counted' && d2.distinct, 1, '.2 was forgotten');
});

test('a flood of 1,000,000 spoofed sources against a cap of 10,000: bounded, evictions counted, a real scanner still caught', () => {
  const cap = 10_000;
  const flood = 1_000_000;
  const e = new Engine(config({ maxTrackedSources: cap, triggerCount: 5, windowMs: 3_600_000, ignore: [], maxBlocksPerMinute: 100 }), 0);
  // Distinct pseudo-random sources (an odd multiplier permutes the 32-bit space), one in
  // eight IPv6; each sends one SYN. The scanner probes a new port every 1,000 of them.
  const scanner = '198.18.0.66';
  const v6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
  const decisions: string[] = [];
  let maxTracked = 0;
  let floodResponses = 0;
  for (let i = 0; i < flood; i++) {
    const x = (Math.imul(i, 0x9e3779b1) + 0x7f4a7c15) >>> 0;
    let source = `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
    if (i % 8 === 7) {
      v6.set([x >>> 24, x >>> 16, x >>> 8, x], 12);
      source = formatIp(v6);
    }
    if (source === scanner) continue;
    const d = e.decide({ time: i, protocol: 'tcp', mode: 'stealth', source: addr(source), port: 22, type: 'syn', flags: 'S', verified: false });
    if (d.kind !== 'counted') floodResponses++;
    if (i % 1000 === 0) decisions.push(e.decide({ time: i, protocol: 'tcp', mode: 'stealth', source: addr(scanner), port: 1 + i / 1000, type: 'syn', verified: false }).kind);
    if (e.trackedSources > maxTracked) maxTracked = e.trackedSources;
  }
  assert.equal(maxTracked, cap, 'never more than the cap');
  assert.equal(floodResponses, 0, 'a spoofed source with one probe is only counted');
  // Every flood source was distinct and tracked once; all but the cap (scanner included) were evicted.
  assert.equal(e.evictedSources, flood + 1 - cap);
  assert.deepEqual(decisions.slice(0, 7), ['counted', 'counted', 'counted', 'counted', 'counted', 'respond', 'suppressed']);
  assert.ok(decisions.slice(6).every((k) => k === 'suppressed'));
  assert.equal(e.blocks.size, 1);
  assert.equal(e.blocks.get(scanner)?.port, 6);
  assert.equal(e.sourceState(addr(scanner))?.probes.size, 256, 'its latest 256 ports are recorded');
});

test('a restored block is in force: its source is answered as blocked, and it expires at its time', () => {
  const e = new Engine(config(), clock);
  e.restore({ source: addr('198.18.0.9'), action: 'block', protocol: 'tcp', port: 79, mode: 'bind', type: 'connect', verified: true, since: clock - 1000, until: clock + 5000 });
  const d = e.decide(probe('198.18.0.9', 80));
  assert.deepEqual([d.kind, d.kind === 'suppressed' && d.blocked], ['suppressed', true]);
  assert.deepEqual(e.expire(clock + 4999), []);
  assert.deepEqual(e.expire(clock + 5000).map((b) => b.source.text), ['198.18.0.9']);
  assert.equal(e.decide(probe('198.18.0.9', 81, { time: clock + 6000 })).kind, 'respond');
});

test('release lifts the block and resets the trigger state: the next probe is judged afresh', () => {
  const e = new Engine(config({ triggerCount: 1 }), clock);
  e.decide(probe('198.18.0.9', 1));
  assert.equal(e.decide(probe('198.18.0.9', 2)).kind, 'respond');
  assert.equal(e.release('198.18.0.9')?.source.text, '198.18.0.9');
  assert.equal(e.blocks.size, 0);
  assert.equal(e.decide(probe('198.18.0.9', 3)).kind, 'counted', 'the ports probed before the unblock no longer count');
  assert.equal(e.release('198.18.0.77'), undefined);
});

test('held addresses and networks (manual blocks) are answered as blocked, until released from the held set', () => {
  const e = new Engine(config(), clock);
  assert.equal(e.decide(probe('198.18.7.1', 1)).kind, 'respond');
  e.setHeld(['198.18.9.0/24', '2001:db8::5']);
  for (const source of ['198.18.9.200', '2001:db8::5']) {
    const d = e.decide(probe(source, 1));
    assert.deepEqual([d.kind, d.kind === 'suppressed' && d.blocked], ['suppressed', true], source);
  }
  assert.equal(e.blocks.size, 1, 'held sources are not the engine\'s blocks');
  e.setHeld([]);
  assert.equal(e.decide(probe('198.18.9.200', 1)).kind, 'respond');
});
