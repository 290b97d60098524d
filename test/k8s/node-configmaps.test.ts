// The operator owns the per-node policy ConfigMaps by name, against a real API server:
// whoever can write ConfigMaps in its namespace cannot plant or keep a policy of their own
// there, with or without our label.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { nodePolicyConfigMapName, type EffectivePolicy } from '../../src/k8s/objects.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { eventually } from '../../support/cluster.js';
import { OPERATOR_NS, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';

const NODE = 'cm-node-1';
const UNSELECTED = 'cm-node-2';
const planted = (node: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: nodePolicyConfigMapName(node), namespace: OPERATOR_NS },
  data: {
    'policy.json': JSON.stringify({
      policy: 'ours',
      generation: 1,
      spec: { response: { tcp: 'command', command: ['/bin/sh', '-c', 'id > /tmp/pwned'] } },
    }),
  },
});

async function configMap(cp: ControlPlane, node: string): Promise<{ metadata: { labels?: Record<string, string> }; data?: Record<string, string> } | undefined> {
  const r = await cp.api('GET', `/api/v1/namespaces/${OPERATOR_NS}/configmaps/${nodePolicyConfigMapName(node)}`);
  return r.status === 200 ? (r.body as { metadata: { labels?: Record<string, string> }; data?: Record<string, string> }) : undefined;
}

const policyIn = (cm: { data?: Record<string, string> } | undefined): EffectivePolicy | undefined =>
  cm?.data?.['policy.json'] ? (JSON.parse(cm.data['policy.json']) as EffectivePolicy) : undefined;

describe('per-node policy ConfigMaps', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { cm: 'yes' } } });
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: UNSELECTED } });
    // Planted before the operator runs, without our label: for a node a policy selects, and for one none does.
    for (const node of [NODE, UNSELECTED]) assert.equal((await cp.api('POST', `/api/v1/namespaces/${OPERATOR_NS}/configmaps`, planted(node))).status, 201);
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'cm' },
        spec: { nodeSelector: { matchLabels: { cm: 'yes' } }, tcp: { mode: 'stealth', ports: [1] }, response: { tcp: 'alert' } },
      }),
    });
    op = await startTestOperator(cp);
  });

  test('a ConfigMap planted under a node\'s name is replaced by the effective policy; one for a node no policy selects is deleted', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const cm = await eventually('the operator\'s policy in the planted ConfigMap', async () => {
      const found = await configMap(cp, NODE);
      return policyIn(found)?.policy === 'cm' ? found : undefined;
    });
    assert.equal(cm.metadata.labels?.['app.kubernetes.io/managed-by'], 'kube-portsentry');
    await eventually('the ConfigMap of the unselected node deleted', async () => (await configMap(cp, UNSELECTED)) === undefined);
  });

  test('drift is restored: data changed and our label removed', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const path = `/api/v1/namespaces/${OPERATOR_NS}/configmaps/${nodePolicyConfigMapName(NODE)}`;
    const r = await cp.api('PUT', path, { ...planted(NODE), metadata: { ...planted(NODE).metadata, labels: {} } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await eventually('the policy restored', async () => policyIn(await configMap(cp, NODE))?.policy === 'cm');
    assert.equal((await configMap(cp, NODE))?.metadata.labels?.['app.kubernetes.io/managed-by'], 'kube-portsentry');
  });

  test('a policy that runs a program the nodes do not allow is not published, and its status says why', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'runs-a-shell' },
        spec: { priority: 100, nodeSelector: { matchLabels: { cm: 'yes' } }, response: { tcp: 'command', command: ['/bin/sh', '-c', 'id'] } },
      }),
    });
    const ready = await eventually('the policy\'s Ready condition', async () => {
      const p = (await cp.api('GET', '/apis/kube-portsentry.io/v1alpha1/portsentrypolicies/runs-a-shell')).body as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
      return p.status?.conditions?.find((c) => c.type === 'Ready');
    });
    assert.deepEqual([ready.status, ready.reason], ['False', 'CommandNotAllowed']);
    assert.match(ready.message, /spec\.response\.command: "\/bin\/sh" is not an allowed command/);
    assert.equal(policyIn(await configMap(cp, NODE))?.policy, 'cm', 'the node keeps the policy it may run');
  });
});
