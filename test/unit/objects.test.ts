// The names the operator gives its objects (src/k8s/objects.ts) and canonical addresses (src/net/ip.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { blockedHostName, nodePolicyConfigMapName } from '../../src/k8s/objects.js';
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
