// The cluster-wide trigger (src/cluster/correlator.ts): touches per node and port, the window, the bounds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Correlator, nodesTouching } from '../../src/cluster/correlator.js';
import { sourceReport } from '../../support/reports.js';

const report = sourceReport;

describe('cluster-wide correlation', () => {
  test('one port on each of three nodes passes a trigger of 2; one node alone does not', () => {
    const c = new Correlator(100);
    const trigger = { count: 2, windowMs: 60_000 };
    assert.equal(c.add('n1', 'p', report('192.0.2.1', [79]), trigger, 1000).triggered, false);
    assert.equal(c.add('n2', 'p', report('192.0.2.1', [79]), trigger, 1000).triggered, false);
    const r = c.add('n3', 'p', report('192.0.2.1', [11]), trigger, 1000);
    assert.equal(r.triggered, true);
    assert.deepEqual([...r.activity.nodes].sort(), ['n1', 'n2', 'n3']);
    // The same port again on the same node is not a new touch.
    assert.equal(c.add('n1', 'p', report('192.0.2.2', [79, 79]), trigger, 1000).activity.touches.size, 1);
  });
  test('touches older than the window are forgotten; the source cap holds', () => {
    const c = new Correlator(3);
    const trigger = { count: 1, windowMs: 1000 };
    c.add('n1', 'p', report('192.0.2.1', [1], 0), trigger, 0);
    assert.equal(c.add('n2', 'p', report('192.0.2.1', [2], 5000), trigger, 5000).triggered, false);
    for (let i = 0; i < 10; i++) c.add('n1', 'p', report(`192.0.2.${10 + i}`, [1]), trigger, 6000);
    assert.equal(c.size, 3);
    assert.equal(c.evicted, 8);
  });
  test('a source over 10,000 ports on 3 nodes keeps a bounded list of touches, and still passes the largest trigger', () => {
    const c = new Correlator(10);
    const trigger = { count: 255, windowMs: 60_000 };
    const ports = Array.from({ length: 10_000 }, (_, i) => i + 1);
    let last;
    for (const node of ['n1', 'n2', 'n3'])
      for (let i = 0; i < ports.length; i += 256) last = c.add(node, 'p', report('192.0.2.1', ports.slice(i, i + 256)), trigger, 1000);
    assert.ok(last!.activity.touches.size <= 256, `${last!.activity.touches.size} touches kept for one source`);
    assert.equal(last!.triggered, true);
    // Touches expire oldest first as new ones come: one probe a minute later counts alone.
    assert.equal(c.add('n1', 'p', report('192.0.2.1', [1], 62_000), trigger, 62_000).activity.touches.size, 1);
  });
});

test('nodes are counted from the touches, once each', () => {
  const correlator = new Correlator(10);
  const trigger = { count: 5, windowMs: 60_000 };
  const report = (ports: number[]) => ({
    source: '198.51.100.1', probes: ports.map((port, i) => ({ protocol: 'tcp' as const, port, type: 'syn', time: 1000 + i })),
    count: ports.length, firstSeen: 1000, lastSeen: 1002, verified: false, blocked: false,
  });
  assert.equal(nodesTouching(correlator.add('node-1', 'p', report([1, 2]), trigger, 2000).activity), 1);
  assert.equal(nodesTouching(correlator.add('node-2', 'p', report([7]), trigger, 2000).activity), 2);
  assert.equal(nodesTouching(correlator.add('node-1', 'p', report([3]), trigger, 2000).activity), 2);
});

test('handshakes are counted per node', () => {
  const correlator = new Correlator(10);
  const trigger = { count: 0, windowMs: 60_000 };
  const report = (verified: boolean) => ({ source: '198.51.100.2', probes: [{ protocol: 'tcp' as const, port: 1, type: verified ? 'connect' : 'syn', time: 1000 }], count: 1, firstSeen: 1000, lastSeen: 1000, verified, blocked: true });
  assert.equal(correlator.add('node-1', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 1);
  assert.equal(correlator.add('node-1', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 1, 'the same node again');
  assert.equal(correlator.add('node-2', 'p', report(false), trigger, 2000).activity.verifiedNodes.size, 1);
  assert.equal(correlator.add('node-3', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 2);
});
