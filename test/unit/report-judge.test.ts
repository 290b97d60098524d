// The operator's chain for each reported source (src/cluster/report-judge.ts), with the
// clock given: protected addresses, sources already blocked or being blocked, alerts and
// node-only verdicts said once per activity, the block budget, and the block itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { emptyFacts, ProtectedSet } from '../../src/cluster/protected-set.js';
import { ReportJudge, type JudgedPolicy, type Standing } from '../../src/cluster/report-judge.js';
import type { SourceReport } from '../../src/cluster/report.js';

const policy = (over: Partial<JudgedPolicy> = {}): JudgedPolicy => ({
  name: 'p',
  triggerCount: 1,
  windowMs: 60_000,
  tcp: 'block',
  udp: 'block',
  verifiedOnly: false,
  evidence: 'verified',
  maxBlocksPerMinute: 60,
  ...over,
});
const report = (source: string, ports: number[], verified = false, time = 1000): SourceReport => ({
  source,
  probes: ports.map((port) => ({ protocol: 'tcp' as const, port, type: verified ? 'connect' : 'syn', time })),
  count: ports.length,
  firstSeen: time,
  lastSeen: time,
  verified,
  blocked: false,
});
const none = (): Standing => 'none';
const guard = new ProtectedSet({ ...emptyFacts(), nodes: ['10.0.0.5'] });

test('a handshake one node saw is a block everywhere, with its reason; an unverified detection stays on its node', () => {
  const judge = new ReportJudge(100);
  assert.equal(judge.judge('n1', policy(), report('192.0.2.5', [1, 2]), none, guard, 1000).kind, 'node-only');
  const v = judge.judge('n1', policy(), report('192.0.2.1', [1, 2], true), none, guard, 1000);
  assert.equal(v.kind, 'block');
  assert.ok(v.kind === 'block' && v.basis === 'verified' && /^cluster-wide trigger: 2 distinct probe\(s\) on 1 node\(s\): tcp\/1, tcp\/2; verified$/.test(v.reason), JSON.stringify(v));
});

test('protected, already blocked, and being blocked come before the evidence', () => {
  const judge = new ReportJudge(100);
  assert.deepEqual(judge.judge('n1', policy(), report('10.0.0.5', [1, 2], true), none, guard, 1000), { kind: 'protected', reason: 'nodes' });
  assert.equal(judge.judge('n1', policy(), report('192.0.2.2', [1, 2], true), () => 'blocked', guard, 1000).kind, 'blocked');
  assert.equal(judge.judge('n2', policy(), report('192.0.2.2', [3], true), () => 'creating', guard, 1000).kind, 'creating');
});

test('alerts and node-only verdicts are announced once per activity', () => {
  const judge = new ReportJudge(100);
  const alert = policy({ tcp: 'alert' });
  const first = judge.judge('n1', alert, report('192.0.2.3', [1, 2]), none, guard, 1000);
  const again = judge.judge('n1', alert, report('192.0.2.3', [3]), none, guard, 1000);
  assert.ok(first.kind === 'alert' && first.announce && again.kind === 'alert' && !again.announce);
  const held = judge.judge('n1', policy(), report('192.0.2.4', [1, 2]), none, guard, 1000);
  const heldAgain = judge.judge('n1', policy(), report('192.0.2.4', [5]), none, guard, 1000);
  assert.ok(held.kind === 'node-only' && held.announce && heldAgain.kind === 'node-only' && !heldAgain.announce);
});

test('the block budget refuses first-seen sources past its share, announced once, and refills with the clock', () => {
  const judge = new ReportJudge(100);
  const one = policy({ evidence: 'singleNode', maxBlocksPerMinute: 2 });
  const kinds = [1, 2, 3].map((i) => judge.judge('n1', one, report(`192.0.2.${10 + i}`, [1, 2]), none, guard, 0).kind);
  assert.deepEqual(kinds, ['block', 'rate-limited', 'rate-limited'], 'a first-seen source may spend only the upper half');
  const refusedAgain = judge.judge('n1', one, report('192.0.2.12', [3]), none, guard, 0);
  assert.ok(refusedAgain.kind === 'block', 'a returning source spends the half kept for it');
  const later = judge.judge('n1', one, report('192.0.2.20', [1, 2], false, 60_000), none, guard, 60_000);
  assert.equal(later.kind, 'block', 'a minute later the budget is back');
});

test('whatever is reported, a protected address is never a block', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ node: fc.constantFrom('n1', 'n2', 'n3'), source: fc.constantFrom('10.0.0.5', '192.0.2.1', '127.0.0.1'), port: fc.integer({ min: 1, max: 20 }), verified: fc.boolean() }), { maxLength: 40 }),
      fc.constantFrom('verified' as const, 'corroborated' as const, 'singleNode' as const),
      (reports, evidence) => {
        const judge = new ReportJudge(10);
        let now = 0;
        for (const r of reports) {
          const v = judge.judge(r.node, policy({ evidence, triggerCount: 0 }), report(r.source, [r.port], r.verified, now), none, guard, (now += 10));
          if (r.source !== '192.0.2.1') assert.equal(v.kind, 'protected');
        }
      },
    ),
  );
});
