// What a detection costs the API server, against a real one: reports from a node whose
// detection is on, one new blocked source each, cause no policy pass and no policy status
// write each (before, every report counted as a change of the node's detection state, and
// every status compared unequal to the API server's copy, whose keys come back sorted).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useControlPlane } from '../../support/control-plane.js';
import { AGENT_USER, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { eventually } from '../../support/cluster.js';

const NODE = 'requests-node-1';
const REPORTS = 20;

describe('operator API requests per detection', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } });
    op = await startTestOperator(cp, { authenticate: async (token) => ({ username: AGENT_USER, node: token }) });
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'requests' },
        spec: { trigger: { count: 0 }, response: { tcp: 'block', scope: 'cluster', clusterEvidence: 'singleNode', maxBlocksPerMinute: 1000 } },
      }),
    });
  });

  test(`${REPORTS} detections write no policy status each`, async (t) => {
    const cp = state.cp;
    if (!cp || !op) return t.skip(state.why);
    const statusPatches = async () =>
      (await op!.metrics.apiRequests.get()).values.filter((v) => v.labels.verb === 'patch' && v.labels.resource === 'portsentrypolicies/status').reduce((n, v) => n + v.value, 0);
    const report = (i: number) => {
      const now = Date.now();
      return {
        node: NODE,
        policy: 'requests',
        sources: [{ source: `198.51.100.${i + 1}`, probes: [{ protocol: 'tcp', port: 1, type: 'connect', time: now }], count: 1, firstSeen: now, lastSeen: now, verified: true, blocked: false }],
      };
    };
    // The policy reaches the node, and its status settles.
    await eventually('first report accepted', async () => (await postReport(op!.url, NODE, report(0))) === 200);
    await new Promise((r) => setTimeout(r, 2000));
    const before = await statusPatches();
    for (let i = 1; i <= REPORTS; i++) assert.equal(await postReport(op.url, NODE, report(i)), 200);
    await eventually(`${REPORTS} BlockedHosts`, async () => ((await cp.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: unknown[] }).items.length >= REPORTS + 1);
    await new Promise((r) => setTimeout(r, 1000));
    const patches = (await statusPatches()) - before;
    t.diagnostic(`policy status patches during ${REPORTS} detections: ${patches}`);
    assert.equal(patches, 0);
  });
});
