// The Events the operator writes for a cluster-wide block, against a real API server: a scan
// reported by many nodes costs a bounded number of Event writes, not one per node.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useControlPlane } from '../../support/control-plane.js';
import { AGENT_USER, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { eventually } from '../../support/cluster.js';

const NODES = Array.from({ length: 24 }, (_, i) => `events-node-${i + 1}`);
const SOURCE = '198.51.100.44';

describe('operator Events', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    for (const name of NODES) await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    // A token here names its node: every report comes from the node its token is bound to.
    op = await startTestOperator(cp, { authenticate: async (token) => ({ username: AGENT_USER, node: token }) });
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'events' },
        spec: { trigger: { count: NODES.length - 1 }, response: { tcp: 'block', scope: 'cluster' } },
      }),
    });
  });

  test(`a scan reported by ${NODES.length} nodes: one BlockedHost, and at most 2 Events whatever the number of nodes`, async (t) => {
    const cp = state.cp;
    if (!cp || !op) return t.skip(state.why);
    const now = Date.now();
    // One port on each node: the cluster-wide trigger passes with the last report.
    for (const node of NODES) {
      const report = {
        node,
        policy: 'events',
        sources: [{ source: SOURCE, probes: [{ protocol: 'tcp', port: 1, type: 'connect', time: now }], count: 1, firstSeen: now, lastSeen: now, verified: true, blocked: false }],
      };
      await eventually(`report from ${node} accepted`, async () => (await postReport(op!.url, node, report)) === 200);
    }
    await eventually('BlockedHost', async () => {
      const list = (await cp.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] };
      return list.items.some((b) => b.spec.address === SOURCE);
    });
    await new Promise((r) => setTimeout(r, 1500)); // Events are written after the BlockedHost
    const events = ((await cp.api('GET', '/api/v1/namespaces/default/events')).body as {
      items: { reason: string; count?: number; message: string; involvedObject: { kind: string; name: string } }[];
    }).items;
    const ours = events.filter((e) => e.message.includes(SOURCE));
    t.diagnostic(`Events for one block seen by ${NODES.length} nodes: ${ours.length} (${ours.map((e) => `${e.involvedObject.kind}/${e.reason} x${e.count}`).join(', ')})`);
    assert.ok(ours.length <= 2, `${ours.length} Events written for one block`);
    const detected = ours.find((e) => e.reason === 'ScanDetected');
    assert.ok(detected, 'a ScanDetected Event');
    assert.equal(detected.count, NODES.length, 'its count is the number of reporting nodes');
    assert.ok(ours.some((e) => e.reason === 'Blocked' && e.involvedObject.kind === 'BlockedHost'));
  });
});
