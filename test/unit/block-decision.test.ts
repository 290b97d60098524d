// The cluster block decision, directly: one node's unverified detection is evidence about
// that node; a block on every node needs a handshake seen by any node (the default), or
// what the policy accepts knowingly (two nodes' reports, or one's).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideClusterBlock, type ClusterEvidence, type ClusterResponse } from '../../src/cluster/block-decision.js';

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

test('alert actions, verifiedOnly, and no trigger yet', () => {
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ action: 'alert' })), { kind: 'alert', reason: 'policy' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3 }), response({ verifiedOnly: true })), { kind: 'alert', reason: 'unverified' });
  assert.deepEqual(decideClusterBlock(evidence({ nodes: 3, verifiedNodes: 1 }), response({ verifiedOnly: true })), { kind: 'block', basis: 'verified' });
  assert.deepEqual(decideClusterBlock(evidence({ triggered: false }), response()), { kind: 'none' });
});
