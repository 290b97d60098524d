// The cluster block decision, directly: one node's unverified detection is evidence about
// that node; a block on every node needs a handshake seen by any node (the default), or
// what the policy accepts knowingly (two nodes' reports, or one's).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Correlator, nodesTouching } from '../../src/operator/correlator.js';
import { decideClusterBlock, type ClusterEvidence, type ClusterResponse } from '../../src/cluster/block-decision.js';
import { sharedHostFacts } from '../../src/cluster/shared-host-facts.js';

const evidence = (over: Partial<ClusterEvidence> = {}): ClusterEvidence => ({ triggered: true, blockedLocally: false, verifiedNodes: 0, nodes: 1, ...over });
const response = (over: Partial<ClusterResponse> = {}): ClusterResponse => ({ action: 'block', verifiedOnly: false, evidence: 'verified', ...over });

test('by default an unverified detection stays on the nodes that saw it, however many', () => {
  assert.deepEqual(decideClusterBlock(evidence(), response()), { kind: 'node-only' });
  assert.deepEqual(decideClusterBlock(evidence({ triggered: false, blockedLocally: true }), response()), { kind: 'node-only' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 5 }), response()), { kind: 'node-only' }, 'unverified reports of many nodes add nothing by default');
});

test('a handshake seen by one node blocks everywhere, whatever the policy accepts', () => {
  for (const level of ['verified', 'corroborated', 'singleNode'] as const) {
    assert.deepEqual(decideClusterBlock(evidence({ verifiedNodes: 1 }), response({ evidence: level })), { kind: 'block', basis: 'verified' });
    assert.deepEqual(decideClusterBlock(evidence({ verifiedNodes: 2, nodes: 2 }), response({ evidence: level })), { kind: 'block', basis: 'verified' });
  }
});

test('corroborated: two nodes\' reports of any kind; singleNode: one node\'s', () => {
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 2 }), response({ evidence: 'corroborated' })), { kind: 'block', basis: 'corroborated' });
  assert.deepEqual(decideClusterBlock(evidence(), response({ evidence: 'corroborated' })), { kind: 'node-only' });
  assert.deepEqual(decideClusterBlock(evidence(), response({ evidence: 'singleNode' })), { kind: 'block', basis: 'one node' });
});

test('a node\'s own facts protect an address everywhere only when a second node reports it too', () => {
  const shared = sharedHostFacts([
    { gateways: ['10.0.0.1'], dns: ['10.0.0.2', '10.0.0.2'], addresses: ['10.0.0.11', '198.51.100.60'] },
    { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['10.0.0.12', '172.17.0.1'] },
    { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['10.0.0.13', '172.17.0.1'] },
  ]);
  assert.deepEqual(shared, { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['172.17.0.1'] }, 'one node listing an address twice is still one node');
});

test('alert actions, verifiedOnly, and no trigger yet', () => {
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ action: 'alert' })), { kind: 'alert', reason: 'policy' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ verifiedOnly: true })), { kind: 'alert', reason: 'unverified' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3, verifiedNodes: 1 }), response({ verifiedOnly: true })), { kind: 'block', basis: 'verified' });
  assert.deepEqual(decideClusterBlock(evidence({ triggered: false }), response()), { kind: 'none' });
});

test('nodes are counted from the touches, once each', () => {
  const correlator = new Correlator(10);
  const trigger = { count: 5, windowMs: 60_000 };
  const report = (ports: number[]) => ({
    source: '198.51.100.1', probes: ports.map((port, i) => ({ protocol: 'tcp' as const, port, type: 'syn', time: 1000 + i })),
    count: ports.length, firstSeen: 1000, lastSeen: 1002, verified: false, blocked: false,
  });
  assert.equal(nodesTouching(correlator.observe('node-1', 'p', report([1, 2]), trigger, 2000).activity), 1);
  assert.equal(nodesTouching(correlator.observe('node-2', 'p', report([7]), trigger, 2000).activity), 2);
  assert.equal(nodesTouching(correlator.observe('node-1', 'p', report([3]), trigger, 2000).activity), 2);
});

test('handshakes are counted per node', () => {
  const correlator = new Correlator(10);
  const trigger = { count: 0, windowMs: 60_000 };
  const report = (verified: boolean) => ({ source: '198.51.100.2', probes: [{ protocol: 'tcp' as const, port: 1, type: verified ? 'connect' : 'syn', time: 1000 }], count: 1, firstSeen: 1000, lastSeen: 1000, verified, blocked: true });
  assert.equal(correlator.observe('node-1', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 1);
  assert.equal(correlator.observe('node-1', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 1, 'the same node again');
  assert.equal(correlator.observe('node-2', 'p', report(false), trigger, 2000).activity.verifiedNodes.size, 1);
  assert.equal(correlator.observe('node-3', 'p', report(true), trigger, 2000).activity.verifiedNodes.size, 2);
});
