// The labels of the API request counter (src/k8s/request-labels.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { requestLabels } from '../../src/k8s/request-labels.js';

describe('API request labels (portsentry_operator_api_requests_total)', () => {
  const server = 'https://127.0.0.1:6443';
  test('verbs as the audit log names them', () => {
    const cases: [string, string, string, string][] = [
      ['GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', 'list', 'blockedhosts'],
      ['GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts?watch=true&resourceVersion=5', 'watch', 'blockedhosts'],
      ['GET', '/api/v1/namespaces/kube-portsentry/configmaps?labelSelector=a%3Db', 'list', 'configmaps'],
      ['GET', '/apis/coordination.k8s.io/v1/namespaces/kube-portsentry/leases/kube-portsentry-operator', 'get', 'leases'],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-portsentry/leases/kube-portsentry-operator', 'update', 'leases'],
      ['POST', '/apis/authentication.k8s.io/v1/tokenreviews', 'create', 'tokenreviews'],
      ['POST', '/api/v1/namespaces/default/events', 'create', 'events'],
      ['PATCH', '/apis/kube-portsentry.io/v1alpha1/blockedhosts/v4-198-51-100-7/status', 'patch', 'blockedhosts/status'],
      ['DELETE', '/apis/kube-portsentry.io/v1alpha1/blockedhosts/v4-198-51-100-7', 'delete', 'blockedhosts'],
      ['DELETE', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', 'deletecollection', 'blockedhosts'],
      ['GET', '/api/v1/nodes', 'list', 'nodes'],
      ['GET', '/api/v1/namespaces/kube-portsentry', 'get', 'namespaces'],
      ['GET', '/version', 'get', 'nonresource'],
    ];
    for (const [method, path, verb, resource] of cases)
      assert.deepEqual(requestLabels(method, `${server}${path}`), { verb, resource }, `${method} ${path}`);
    // Paths without a server (the watch's) read the same.
    assert.deepEqual(requestLabels('GET', '/api/v1/nodes?watch=1'), { verb: 'watch', resource: 'nodes' });
  });
  test('names, namespaces and addresses never become label values', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9-]{1,30}$/), fc.stringMatching(/^[a-z0-9-]{1,30}$/), fc.constantFrom('GET', 'PUT', 'PATCH', 'DELETE'), (ns, name, method) => {
        const { resource } = requestLabels(method, `${server}/api/v1/namespaces/${ns}/configmaps/${name}`);
        assert.equal(resource, 'configmaps');
      }),
    );
  });
});
