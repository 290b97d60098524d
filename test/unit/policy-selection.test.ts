// Which policy each node runs (src/cluster/policy-selection.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { matchesSelector, resolveNodePolicies, type Candidate, type NodeLabels } from '../../src/cluster/policy-selection.js';

describe('policy selection', () => {
  const labels = { zone: 'a', role: 'edge', gpu: '' };
  test('matchLabels and every operator', () => {
    assert.ok(matchesSelector(labels, { matchExpressions: [] }));
    assert.ok(matchesSelector(labels, { matchLabels: { zone: 'a' }, matchExpressions: [] }));
    assert.ok(!matchesSelector(labels, { matchLabels: { zone: 'b' }, matchExpressions: [] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'role', operator: 'In', values: ['edge', 'x'] }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['edge'] }] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['edge'] }] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'missing', operator: 'In', values: ['a'] }] }));
  });
  test('priority, then age, then name decides; unselected nodes get nothing', () => {
    const c = (name: string, priority: number, created: number, matchLabels: Record<string, string> = {}): Candidate => ({
      name,
      priority,
      created,
      selector: { matchLabels, matchExpressions: [] },
    });
    const nodes: NodeLabels[] = [
      { name: 'n1', labels: { zone: 'a' } },
      { name: 'n2', labels: { zone: 'b' } },
      { name: 'n3', labels: {} },
    ];
    const m = resolveNodePolicies([c('all', 0, 100), c('zone-a', 10, 200, { zone: 'a' }), c('old', 0, 50, { zone: 'b' })], nodes);
    assert.deepEqual(Object.fromEntries(m), { n1: 'zone-a', n2: 'old', n3: 'all' });
    const tie = resolveNodePolicies([c('b', 1, 10), c('a', 1, 10)], nodes.slice(0, 1));
    assert.equal(tie.get('n1'), 'a');
    assert.equal(resolveNodePolicies([c('z', 0, 1, { zone: 'q' })], nodes).size, 0);
  });
});
