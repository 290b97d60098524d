// The cluster block decision, directly: an unverified detection needs corroboration (or the
// policy's explicit opt-in) before it blocks on every node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideClusterBlock, touchingNodes, type ClusterEvidence, type ClusterResponse } from '../../src/cluster/block-decision.js';

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
  assert.equal(touchingNodes(new Map([['node-1 tcp/1', 1], ['node-1 tcp/2', 2], ['node-2 udp/7', 3]])), 2);
  assert.equal(touchingNodes(new Map()), 0);
});
