// The operator's cluster block budget (response.maxBlocksPerMinute per policy) against a
// flood of one-shot sources in the agents' reports: the flood gets the upper half of the
// budget for first-seen sources and nothing more; a source refused there that is reported
// again gets the lower half; a source proven by handshakes has a budget of its own. The
// control: beyond its half, the flood is refused and counted.
// Real API server, real operator report endpoint, pod-bound agent tokens.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { eventually } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { podBoundToken } from '../../support/tokens.js';

const AGENT_SA = 'kube-portsentry-agent';
const NODES = ['budget-node-1', 'budget-node-2'];
const BUDGET = 4;

describe('the operator\'s block budget under a flood of one-shot sources', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());
  const tokens = new Map<string, string>();

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, AGENT_SA]);
    for (const name of NODES) {
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      tokens.set(name, (await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: AGENT_SA, pod: `agent-${name}`, node: name })).token);
    }
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'budget' },
        // One node's word blocks everywhere here, so only the budget stands in the way.
        spec: { tcp: { mode: 'stealth', ports: [1] }, udp: { mode: 'off' }, trigger: { count: 0 }, response: { tcp: 'block', scope: 'cluster', clusterEvidence: 'singleNode', maxBlocksPerMinute: BUDGET } },
      }),
    });
    op = await startTestOperator(cp);
  });

  const source = (address: string, verified = false) => {
    const now = Date.now();
    return { source: address, probes: [{ protocol: 'tcp', port: 1, type: verified ? 'connect' : 'syn', time: now }], count: 1, firstSeen: now, lastSeen: now, verified, blocked: true };
  };
  const blocked = async () =>
    new Set(((await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] }).items.map((b) => b.spec.address));
  const report = (node: string, sources: object[]) => postReport(op!.url, tokens.get(node)!, { node, policy: 'budget', sources });
  const flood = (first: number, n: number) => Array.from({ length: n }, (_, i) => source(`198.19.0.${first + i}`));
  const refusals = async () => (await op!.metrics.blocksRateLimited.get()).values.find((v) => v.labels.policy === 'budget')?.value ?? 0;

  test('the flood gets half; a returning source and a proven one are blocked all the same', async (t) => {
    if (!state.cp) return t.skip(state.why);
    // Twenty one-shot sources in one report (an agent's batch during a flood).
    assert.equal(await report('budget-node-1', flood(1, 20)), 200);
    const first = [...(await blocked())].filter((a) => a.startsWith('198.19.0.'));
    t.diagnostic(`one-shot sources blocked: ${first.length} of 20; refusals counted: ${await refusals()}`);
    assert.equal(first.length, BUDGET / 2, 'the flood spent more than the half for first-seen sources');
    assert.ok((await refusals()) >= 20 - BUDGET / 2, 'refusals are counted');
    // A refused source reported again (a scanner that goes on) takes from the other half.
    const refused = flood(1, 20).map((s) => s.source).find((a) => !first.includes(a))!;
    assert.equal(await report('budget-node-1', [source(refused)]), 200);
    await eventually('the returning source blocked', async () => (await blocked()).has(refused));
    // More of the flood: nothing left for first-seen sources.
    assert.equal(await report('budget-node-1', flood(100, 20)), 200);
    const now = await blocked();
    assert.deepEqual(flood(100, 20).filter((s) => now.has(s.source)), [], 'the flood got more');
    // A source proven by a handshake: its own budget.
    assert.equal(await report(NODES[0]!, [source('198.51.100.80', true)]), 200);
    await eventually('the proven source blocked', async () => (await blocked()).has('198.51.100.80'));
  });
});
