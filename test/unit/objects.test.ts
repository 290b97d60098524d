// The names the operator gives its objects (src/k8s/objects.ts) and canonical addresses
// (src/net/ip.ts); what the agent keeps of a BlockedHost.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { blockEntryOf, blockedHostName, leanBlockedHost, nodePolicyConfigMapName, withoutManagedFields, type BlockedHostObject } from '../../src/k8s/objects.js';
import { canonicalAddress } from '../../src/net/ip.js';

describe('object names', () => {
  test('BlockedHost and ConfigMap names are valid DNS names', () => {
    assert.equal(blockedHostName('198.51.100.7'), 'v4-198-51-100-7');
    assert.equal(blockedHostName('10.0.0.0/8'), 'v4-10-0-0-0-8');
    assert.equal(blockedHostName('2001:db8::1'), 'v6-2001-db8--1');
    assert.match(blockedHostName('::'), /^v6-[a-z0-9-]+[a-z0-9]$/);
    assert.match(nodePolicyConfigMapName('Node_With.Odd.Chars-'.repeat(20)), /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const name = blockedHostName(ip);
        assert.match(name, /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, ip);
      }),
    );
    assert.equal(canonicalAddress('2001:DB8::1/128'), '2001:db8::1');
  });
});

describe("the agent's copy of a BlockedHost (leanBlockedHost)", () => {
  const full = (spec: Partial<BlockedHostObject['spec']>): BlockedHostObject =>
    ({
      apiVersion: 'kube-portsentry.io/v1alpha1',
      kind: 'BlockedHost',
      metadata: {
        name: 'v4-198-51-100-7',
        uid: 'a1',
        resourceVersion: '42',
        generation: 1,
        creationTimestamp: '2026-01-01T00:00:00Z',
        labels: { 'app.kubernetes.io/managed-by': 'kube-portsentry' },
        managedFields: [{ manager: 'kube-portsentry', operation: 'Update', fieldsV1: { 'f:spec': {} } }],
      },
      spec,
      status: { firstSeen: '2026-01-01T00:00:00Z', ports: Array.from({ length: 64 }, (_, i) => `tcp/${i}`), reportingNodes: ['a', 'b'] },
    }) as BlockedHostObject;

  test('keeps what the agent reads (name, version, the block entry) and nothing else', () => {
    for (const spec of [
      { address: '198.51.100.7', source: 'detected', policy: 'p', reason: 'scan', expiresAt: '2026-01-01T01:00:00Z' },
      { address: '2001:db8::/64', source: 'manual', reason: 'blocklist' },
      { address: 'not an address', source: 'detected' },
      {},
    ] as Partial<BlockedHostObject['spec']>[]) {
      const bh = full(spec);
      const lean = leanBlockedHost(bh);
      assert.deepEqual(blockEntryOf(lean.spec), blockEntryOf(bh.spec), JSON.stringify(spec));
      assert.equal(lean.metadata.name, bh.metadata.name);
      assert.equal(lean.metadata.resourceVersion, '42');
      assert.deepEqual(Object.keys(lean.metadata).sort(), ['name', 'resourceVersion']);
      assert.equal(lean.status, undefined);
      assert.ok(JSON.stringify(lean).length < JSON.stringify(bh).length / 4, 'a fraction of the object');
    }
  });
});

describe("the operator's copy of a BlockedHost (withoutManagedFields)", () => {
  test('drops metadata.managedFields and keeps everything else', () => {
    const bh = {
      apiVersion: 'kube-portsentry.io/v1alpha1',
      kind: 'BlockedHost',
      metadata: { name: 'v4-198-51-100-7', uid: 'a1', resourceVersion: '42', labels: { a: 'b' }, managedFields: [{ manager: 'kube-portsentry', fieldsV1: {} }] },
      spec: { address: '198.51.100.7', source: 'detected' },
      status: { ports: ['tcp/1'], reportingNodes: ['n1'] },
    };
    const lean = withoutManagedFields(bh);
    const { managedFields: _dropped, ...metadata } = bh.metadata;
    assert.deepEqual(lean, { ...bh, metadata });
    assert.ok(bh.metadata.managedFields, 'the original is left as it was');
    const none = { metadata: { name: 'x' } };
    assert.equal(withoutManagedFields(none), none);
  });
});
