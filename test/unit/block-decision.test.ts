// The cluster block decision, directly: an unverified detection needs corroboration (or the
// policy's explicit opt-in) before it blocks on every node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Correlator, nodesTouching } from '../../src/operator/correlator.js';
import { decideClusterBlock, type ClusterEvidence, type ClusterResponse } from '../../src/cluster/block-decision.js';

const evidence = (over: Partial<ClusterEvidence> = {}): ClusterEvidence => ({ triggered: true, blockedLocally: false, verified: false, nodes: 1, ...over });
const response = (over: Partial<ClusterResponse> = {}): ClusterResponse => ({ action: 'block', verifiedOnly: false, unverifiedClusterBlocks: false, ...over });

test('one node\'s unverified detection stays on that node', () => {
  assert.deepEqual(decideClusterBlock(evidence(), response()), { kind: 'node-only' });
  assert.deepEqual(decideClusterBlock(evidence({ triggered: false, blockedLocally: true }), response()), { kind: 'node-only' });
});

test('corroborated by a second node, or by a verified probe, it blocks everywhere', () => {
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 2 }), response()), { kind: 'block', basis: 'corroborated' });
  assert.deepEqual(decideClusterBlock(evidence({ verified: true }), response()), { kind: 'block', basis: 'verified' });
});

test('the policy may opt in to unverified cluster blocks', () => {
  assert.deepEqual(decideClusterBlock(evidence(), response({ unverifiedClusterBlocks: true })), { kind: 'block', basis: 'policy opts in' });
});

test('alert actions, verifiedOnly, and no trigger yet', () => {
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ action: 'alert' })), { kind: 'alert', reason: 'policy' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ verifiedOnly: true })), { kind: 'alert', reason: 'unverified' });
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