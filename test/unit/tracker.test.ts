// The compact tracker against a plain Map-based reference: the engine driven by random
// probe sequences must decide exactly as the reference does, probe by probe.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PROBE_TYPES, type Probe, type ProbeType } from '../../src/engine/probe.js';
import { AddressKey } from '../../src/engine/address-key.js';
import { Engine, engineConfig, type BlockRecord, type Decision, type EngineConfig } from '../../src/engine/engine.js';
import { IpTrie } from '../../src/net/ip-trie.js';
import { BlockBudget } from '../../src/engine/block-budget.js';
import { MAX_RECORDED_PROBES, SourceTracker, type SourceState } from '../../src/engine/tracker.js';
import { addressOf } from '../../src/net/address.js';
import { formatIp, parseCidr } from '../../src/net/ip.js';

const addr = (text: string) => addressOf(text)!;
import { compileDocument } from '../../src/policy/compiled.js';
import { defaultPolicy } from '../../src/policy/default.js';

// Canonical text, IPv4 and IPv6, edge values included.
const POOL = [
  '198.18.0.1',
  '198.18.0.2',
  '198.19.255.254',
  '0.0.0.0',
  '255.255.255.255',
  '2001:db8::1',
  '2001:db8::2',
  '2001:db8:0:1::',
  '::',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '1:2:3:4:5:6:7:8',
  '2001:db8:1:2:3:4:5:6',
];

interface ModelState {
  firstSeen: number;
  lastSeen: number;
  probes: Map<string, number>;
  types: Set<ProbeType>;
  total: number;
  triggered: boolean;
  /** A block refused by the rate limit was answered in this window. */
  rateLimited: boolean;
}

/** The reference: what the tracker did before it was compact, one object and Map per source. */
class ModelTracker {
  /** Map order is recency order: a touched source is deleted and set again. */
  readonly states = new Map<string, ModelState>();
  evicted = 0;

  constructor(
    private capacity: number,
    private windowMs: number,
  ) {}

  configure(capacity: number, windowMs: number): void {
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.shrink();
  }

  record(p: Probe): ModelState {
    let s = this.states.get(p.source.text);
    if (s && p.time - s.lastSeen > this.windowMs) s = undefined;
    this.states.delete(p.source.text);
    s ??= { firstSeen: p.time, lastSeen: p.time, probes: new Map(), types: new Set(), total: 0, triggered: false, rateLimited: false };
    this.states.set(p.source.text, s);
    s.lastSeen = p.time;
    s.total += p.repeats ?? 1;
    s.types.add(p.type);
    const key = `${p.protocol}/${p.port}`;
    s.probes.delete(key);
    s.probes.set(key, p.time);
    for (const [k, t] of s.probes) {
      if (t >= p.time - this.windowMs && s.probes.size <= MAX_RECORDED_PROBES) break;
      s.probes.delete(k);
    }
    this.shrink();
    return s;
  }

  expire(now: number): void {
    for (const [source, s] of this.states) {
      if (now - s.lastSeen <= this.windowMs) break;
      this.states.delete(source);
    }
  }

  private shrink(): void {
    for (const source of this.states.keys()) {
      if (this.states.size <= this.capacity) break;
      this.states.delete(source);
      this.evicted++;
    }
  }
}

/** The reference engine: every probe is checked against the lists, no caching. */
class ModelEngine {
  readonly tracker: ModelTracker;
  readonly active = new Map<string, BlockRecord>();
  private ignore: IpTrie;
  own = new Set<string>();
  private readonly budget: BlockBudget;

  constructor(
    private config: EngineConfig,
    now: number,
  ) {
    this.tracker = new ModelTracker(config.maxTrackedSources, config.windowMs);
    this.ignore = IpTrie.of(config.ignore);
    this.budget = new BlockBudget(config.maxBlocksPerMinute, now);
  }

  reconfigure(config: EngineConfig): void {
    this.config = config;
    this.ignore = IpTrie.of(config.ignore);
    this.tracker.configure(config.maxTrackedSources, config.windowMs);
    this.budget.configure(config.maxBlocksPerMinute);
  }

  decide(p: Probe): Decision {
    if (this.own.has(p.source.text)) return { kind: 'ignored', reason: 'own-address' };
    if (this.ignore.has(p.source.text)) return { kind: 'ignored', reason: 'ignore-list' };
    const s = this.tracker.record(p);
    const distinct = s.probes.size;
    if (this.active.has(p.source.text)) return { kind: 'suppressed', distinct, blocked: true };
    if (distinct <= this.config.triggerCount) return { kind: 'counted', distinct };
    if (s.triggered) return { kind: 'suppressed', distinct };
    const action = this.config.actions[p.protocol];
    if (action === 'alert' || (this.config.verifiedOnly && !p.verified)) {
      s.triggered = true;
      return { kind: 'alert', reason: action === 'alert' ? 'policy' : 'unverified', distinct, ports: [...s.probes.keys()] };
    }
    const evidence = p.verified ? 'verified' : s.rateLimited ? 'returning' : 'first';
    if (p.refusedInKernel || (!p.blockedInKernel && !this.budget.take(p.time, evidence))) {
      if (s.rateLimited) return { kind: 'suppressed', distinct };
      s.rateLimited = true;
      return { kind: 'alert', reason: 'rate-limited', distinct, ports: [...s.probes.keys()] };
    }
    s.triggered = true;
    const block: BlockRecord = {
      source: p.source,
      action,
      protocol: p.protocol,
      port: p.port,
      mode: p.mode,
      type: p.type,
      verified: p.verified,
      since: p.time,
      until: p.time + this.config.durationMs,
    };
    this.active.set(p.source.text, block);
    return { kind: 'respond', block, distinct, ports: [...s.probes.keys()], types: PROBE_TYPES.filter((t) => s.types.has(t)) };
  }

  expire(now: number): BlockRecord[] {
    const lifted: BlockRecord[] = [];
    for (const [source, block] of this.active) {
      if (block.until > now) continue;
      this.active.delete(source);
      this.tracker.states.delete(source);
      lifted.push(block);
    }
    this.tracker.expire(now);
    return lifted;
  }
}

const settings = fc.record({
  maxTrackedSources: fc.integer({ min: 1, max: 8 }),
  windowMs: fc.integer({ min: 1, max: 50 }),
  triggerCount: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constantFrom(255, 256, 300)),
  tcp: fc.constantFrom('alert', 'block', 'command'),
  udp: fc.constantFrom('alert', 'block', 'command'),
  durationMs: fc.integer({ min: 1, max: 200 }),
  verifiedOnly: fc.boolean(),
  maxBlocksPerMinute: fc.integer({ min: 1, max: 5 }),
  ignore: fc.subarray(POOL, { maxLength: 3 }),
});

const probeOp = fc.record({
  op: fc.constant('probe' as const),
  source: fc.nat(POOL.length - 1),
  udp: fc.boolean(),
  port: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 65535 })),
  // Mostly forward, sometimes backward (a stepped clock), rarely 35 days at once (the tracker's epoch moves).
  dt: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 30 }) }, { weight: 1, arbitrary: fc.integer({ min: -20, max: 0 }) }, { weight: 1, arbitrary: fc.constant(35 * 86_400_000) }),
  type: fc.constantFrom<ProbeType>('connect', 'udp', 'syn', 'fin', 'null', 'xmas', 'oddball'),
  repeats: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  verified: fc.boolean(),
});
/** One source walking many ports at once: reaches the 256 recorded probes. */
const burstOp = fc.record({ op: fc.constant('burst' as const), source: fc.nat(POOL.length - 1), ports: fc.integer({ min: 200, max: 320 }), from: fc.nat(65535) });
const expireOp = fc.record({ op: fc.constant('expire' as const), dt: fc.integer({ min: 0, max: 100 }) });
const reconfigureOp = fc.record({ op: fc.constant('reconfigure' as const), settings });
const ownOp = fc.record({ op: fc.constant('own' as const), addresses: fc.subarray(POOL, { maxLength: 2 }) });
const ops = fc.array(
  fc.oneof({ weight: 20, arbitrary: probeOp }, { weight: 1, arbitrary: burstOp }, { weight: 2, arbitrary: expireOp }, { weight: 1, arbitrary: reconfigureOp }, { weight: 1, arbitrary: ownOp }),
  { maxLength: 150 },
);

type Settings = typeof settings extends fc.Arbitrary<infer S> ? S : never;
function config(s: Settings): EngineConfig {
  const { tcp, udp, ...rest } = s;
  return { ...engineConfig(compileDocument(defaultPolicy())), ...rest, ignore: rest.ignore.map((c) => parseCidr(c)!), actions: { tcp, udp } };
}

/** A state in a form where the order of probes counts (and that of types does not). */
function comparable(s: SourceState | undefined): unknown {
  return s && { ...s, probes: [...s.probes], types: [...s.types].sort() };
}

function modelState(s: ModelState | undefined, source: string): unknown {
  return comparable(s && { source, firstSeen: s.firstSeen, lastSeen: s.lastSeen, probes: s.probes, types: s.types, total: s.total, triggered: s.triggered });
}

test('the engine with the compact tracker decides as the Map-based reference, probe by probe', () => {
  fc.assert(
    fc.property(settings, ops, (initial, steps) => {
      let now = 1_700_000_000_000;
      const engine = new Engine(config(initial), now);
      const model = new ModelEngine(config(initial), now);
      const check = (p: Probe, step: number): void => {
        const got = engine.decide(p);
        assert.deepEqual(got, model.decide(p), `decision at step ${step} for ${p.source.text} ${p.protocol}/${p.port} at ${p.time}`);
        assert.equal(engine.trackedSources, model.tracker.states.size, `size at step ${step}`);
        assert.equal(engine.evictedSources, model.tracker.evicted, `evictions at step ${step}`);
        if (got.kind !== 'ignored') assert.deepEqual(comparable(engine.sourceState(p.source)), modelState(model.tracker.states.get(p.source.text), p.source.text), `state at step ${step}`);
      };
      steps.forEach((s, step) => {
        if (s.op === 'probe') {
          now += s.dt;
          const p: Probe = { time: now, protocol: s.udp ? 'udp' : 'tcp', mode: 'stealth', source: addr(POOL[s.source]!), port: s.port, type: s.type, verified: s.verified };
          if (s.repeats !== undefined) p.repeats = s.repeats;
          check(p, step);
        } else if (s.op === 'burst') {
          for (let k = 0; k < s.ports; k++) check({ time: now, protocol: 'tcp', mode: 'bind', source: addr(POOL[s.source]!), port: (s.from + k) % 65536, type: 'connect', verified: true }, step);
        } else if (s.op === 'expire') {
          now += s.dt;
          assert.deepEqual(engine.expire(now), model.expire(now), `lifted at step ${step}`);
          assert.equal(engine.trackedSources, model.tracker.states.size, `size after expiry at step ${step}`);
        } else if (s.op === 'reconfigure') {
          engine.reconfigure(config(s.settings));
          model.reconfigure(config(s.settings));
          assert.equal(engine.trackedSources, model.tracker.states.size, `size after reconfigure at step ${step}`);
          assert.equal(engine.evictedSources, model.tracker.evicted, `evictions after reconfigure at step ${step}`);
        } else {
          engine.setOwnAddresses(s.addresses);
          model.own = new Set(s.addresses);
        }
      });
    }),
    { numRuns: 400 },
  );
});

test('address words: the bytes of an address load as words and format back to its text', () => {
  const key = new AddressKey();
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (bytes) => {
      const address = addr(formatIp(bytes)); // an IPv4-mapped address is IPv4
      key.load(address.bytes);
      assert.equal(key.family, address.family);
      const w = key.words;
      const words = [...address.bytes].reduce<number[]>((out, b, i) => (i % 4 ? (out[out.length - 1] = ((out[out.length - 1]! << 8) | b) >>> 0) : out.push(b), out), []);
      assert.deepEqual([...w.slice(0, address.family === 4 ? 1 : 4)], words);
      assert.equal(key.format(address.family, w[0]!, w[1]!, w[2]!, w[3]!), address.text);
    }),
    { numRuns: 2000 },
  );
});

test('a full probe pool drops the least recently seen sources; memory stays within its bounds', () => {
  const pool = 1024; // four segments of 256 probes
  const tracker = new SourceTracker(1000, 60_000, pool);
  const probe = (source: string, port: number): Probe => ({ time: 1000, protocol: 'tcp', mode: 'bind', source: addr(source), port, type: 'connect', verified: true });
  let maxBytes = 0;
  for (let s = 0; s < 40; s++) {
    const source = `198.18.1.${s}`;
    for (let port = 1; port <= 256; port++) tracker.record(probe(source, port));
    assert.equal(tracker.distinct(tracker.find(addr(source))), 256, 'the newest source keeps all its probes');
    maxBytes = Math.max(maxBytes, tracker.bytes);
  }
  // At most three sources hold 256 probes while a fourth grows into the pool.
  assert.ok(tracker.size <= 4, `${tracker.size} sources tracked`);
  assert.equal(tracker.evicted, 40 - tracker.size);
  assert.equal(tracker.find(addr('198.18.1.0')), -1);
  // Sources with one probe need no pool: they fill the capacity.
  for (let s = 0; s < 2000; s++) tracker.record(probe(`2001:db8::${s.toString(16)}`, 1));
  assert.equal(tracker.size, 1000);
  assert.ok(tracker.bytes < maxBytes + 1000 * 64, `${tracker.bytes} bytes`);
});
