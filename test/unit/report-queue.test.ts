// The agent's report queue under a flood of one-shot forged sources: it stays bounded,
// and what it drops to stay so are those forged-looking sources (one probe, unverified, not
// blocked here), never a scanner that showed more: a completed handshake, a second probe,
// or a block on this node. Those go out first, too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReportQueue } from '../../src/agent/report-queue.js';
import { MAX_REPORT_BYTES, parseReport, reportEnvelopeBytes } from '../../src/cluster/report.js';
import { formatIp } from '../../src/net/ip.js';

const CAPACITY = 10_000; // the agent's default (--report-queue)
const forged = (i: number) => formatIp(Uint8Array.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]));
const probe = (port: number, time: number) => ({ protocol: 'tcp' as const, port, type: 'syn', time });

test('a flood of one-shot forged sources evicts none of the scanners that showed more, and they are sent first', () => {
  const q = new ReportQueue(CAPACITY);
  q.add('198.51.100.1', { protocol: 'tcp', port: 2001, type: 'connect', time: 0 }, true, false); // a handshake
  q.add('198.51.100.2', probe(1, 0), false, false); // a stealth scanner's two probes
  q.add('198.51.100.2', probe(11, 1), false, false);
  q.add('198.51.100.3', probe(1, 0), false, true); // blocked on this node
  for (let i = 0; i < 5 * CAPACITY; i++) q.add(forged(i), probe(1, 10 + i), false, false);
  assert.equal(q.size, CAPACITY, 'bounded');
  assert.equal(q.dropped, 5 * CAPACITY + 3 - CAPACITY, 'every eviction counted');
  const first = q.take(MAX_REPORT_BYTES).map((s) => s.source);
  assert.deepEqual(first.slice(0, 3), ['198.51.100.1', '198.51.100.2', '198.51.100.3'], 'the scanners, first');
});

test('a one-shot source that comes back is no longer the first to go', () => {
  const q = new ReportQueue(3);
  q.add('198.51.100.9', probe(1, 0), false, false);
  for (let i = 0; i < 3; i++) q.add(forged(i), probe(1, 1), false, false);
  assert.equal(q.take(MAX_REPORT_BYTES).some((s) => s.source === '198.51.100.9'), false, 'one probe, unverified: dropped first');
  q.add('198.51.100.9', probe(1, 2), false, false);
  q.add('198.51.100.9', probe(11, 3), false, false);
  for (let i = 0; i < 10; i++) q.add(forged(100 + i), probe(1, 4), false, false);
  assert.ok(q.take(MAX_REPORT_BYTES).some((s) => s.source === '198.51.100.9'));
});

test('when every source showed more, the oldest goes, as before', () => {
  const q = new ReportQueue(2);
  for (const [i, source] of ['198.51.100.1', '198.51.100.2', '198.51.100.3'].entries()) q.add(source, probe(1, i), true, false);
  assert.deepEqual(q.take(MAX_REPORT_BYTES).map((s) => s.source), ['198.51.100.2', '198.51.100.3']);
  assert.equal(q.dropped, 1);
});

describe('report queue', () => {
  test('aggregates per source, drops the oldest when full, takes in order', () => {
    const q = new ReportQueue(2);
    for (let i = 0; i < 1000; i++) q.add('192.0.2.1', { protocol: 'tcp', port: 1 + (i % 3), type: 'syn', time: i }, false, false);
    q.add('192.0.2.2', { protocol: 'udp', port: 53, type: 'udp', time: 1 }, false, true);
    q.add('192.0.2.3', { protocol: 'udp', port: 53, type: 'udp', time: 1 }, true, false);
    assert.equal(q.size, 2);
    assert.equal(q.dropped, 1);
    const batch = q.take(MAX_REPORT_BYTES);
    assert.deepEqual(batch.map((b) => b.source), ['192.0.2.2', '192.0.2.3']);
    assert.equal(batch[0]!.blocked, true);
    q.putBack(batch);
    assert.equal(q.size, 2);
  });
  test('a forged sweep (1,000 sources, 15 ports each) is taken in reports under the 1 MiB limit, none lost', () => {
    const q = new ReportQueue(5000);
    const node = 'a-node-name-of-some-length';
    for (let i = 0; i < 1000; i++)
      for (let p = 0; p < 15; p++)
        q.add(`2001:db8:ffff:ffff:ffff:ffff:${(i >> 8).toString(16)}:${(i & 255).toString(16)}`, { protocol: 'tcp', port: 60000 + p, type: 'syn', time: 1_700_000_000_000 + i }, false, false);
    const sent = new Set<string>();
    let reports = 0;
    while (q.size > 0) {
      const body = JSON.stringify({ node, policy: 'default', sources: q.take(MAX_REPORT_BYTES - reportEnvelopeBytes(node, 'default')) });
      assert.ok(Buffer.byteLength(body) <= MAX_REPORT_BYTES, `report ${reports} is ${Buffer.byteLength(body)} bytes`);
      for (const s of parseReport(body).sources) sent.add(s.source);
      reports++;
    }
    assert.equal(sent.size, 1000);
    assert.ok(reports >= 2);
  });
  test('one source with a thousand ports keeps a bounded list', () => {
    const q = new ReportQueue(10);
    for (let port = 1; port <= 1000; port++) q.add('192.0.2.1', { protocol: 'tcp', port, type: 'syn', time: port }, false, false);
    const [r] = q.take(MAX_REPORT_BYTES);
    assert.equal(r!.count, 1000);
    assert.equal(r!.probes.length, 256);
  });
});

test('the sender is told at once of a source it can act on, never of a one-shot unverified probe', () => {
  const q = new ReportQueue(100);
  const told: number[] = [];
  let n = 0;
  q.listen(() => told.push(n));
  n = 1;
  for (let i = 0; i < 50; i++) q.add(forged(i), probe(1, i), false, false); // a forged flood
  assert.deepEqual(told, [], 'one-shot forged sources wait for the interval');
  n = 2;
  q.add(forged(0), probe(11, 60), false, false); // its second probe
  n = 3;
  q.add(forged(0), probe(15, 61), false, false);
  q.add('198.51.100.1', probe(1, 62), false, true); // blocked here at its first probe
  n = 4;
  q.add('198.51.100.2', { protocol: 'tcp', port: 2001, type: 'connect', time: 63 }, true, false); // a handshake
  q.add('198.51.100.2', probe(1, 64), true, false);
  assert.deepEqual(told, [2, 3, 4], 'each source told once, when it stops being weak');
});
