// One node's word stays one node's, but for a handshake. A node's agent credential (a
// compromised agent, or whoever holds its pod's token) can report anything about its own
// node, and that is nearly all it decides:
//  - a `verified: true` claim (a handshake completed) from one node is what the default
//    (clusterEvidence: verified) blocks everywhere on: a connect scan of one node blocks
//    the scanner on all. The known risk (README): root on a node can claim one; the
//    BlockedHost names that node; an unverified report from one node blocks nothing
//    cluster-wide (the control);
//  - the gateways, resolvers and addresses a node reports are protected for that node (its
//    own agent refuses to block them) and cluster-wide only when a second node reports them
//    too: one node listing a scanner as its address exempts nobody;
//  - a report is judged by the policy the operator assigned to its node, whatever policy it
//    names;
//  - the reason a node gives for its detection being off reaches the policy's status
//    without control characters.
// Real API server, real operator report endpoint, pod-bound agent tokens.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { eventually } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { podBoundToken } from '../../support/tokens.js';

const AGENT_SA = 'kube-portsentry-agent';
const NODES = ['on-node-1', 'on-node-2', 'on-node-3'];
/** Nodes whose policy only alerts. */
const ALERT_NODES = ['on-node-4', 'on-node-5'];

describe('one node\'s word stays one node\'s', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());
  const tokens = new Map<string, string>();

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, AGENT_SA]);
    for (const [i, name] of [...NODES, ...ALERT_NODES].entries()) {
      const labels = ALERT_NODES.includes(name) ? { tier: 'alert' } : {};
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: { podCIDR: `10.244.${i + 1}.0/24` } });
      tokens.set(name, (await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: AGENT_SA, pod: `agent-${name}`, node: name })).token);
    }
    const policy = (name: string, spec: object) => ({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'PortSentryPolicy', metadata: { name }, spec });
    const base = { tcp: { mode: 'stealth', ports: [1] }, udp: { mode: 'off' }, trigger: { count: 0 } };
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          policy('one', { ...base, priority: 10, response: { tcp: 'block', scope: 'cluster' } }),
          // Nodes 4 and 5: alert only.
          policy('alerting', { ...base, priority: 20, nodeSelector: { matchLabels: { tier: 'alert' } }, response: { tcp: 'alert', scope: 'cluster' } }),
          // Assigned to no node.
          policy('loose', { ...base, priority: 30, nodeSelector: { matchLabels: { nowhere: 'true' } }, response: { tcp: 'block', scope: 'cluster' } }),
        ],
      }),
    });
    op = await startTestOperator(cp);
  });

  const source = (address: string, verified: boolean) => {
    const now = Date.now();
    return { source: address, probes: [{ protocol: 'tcp', port: 1, type: verified ? 'connect' : 'syn', time: now }], count: 1, firstSeen: now, lastSeen: now, verified, blocked: true };
  };
  const blocked = async (address: string) =>
    ((await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] }).items.some((b) => b.spec.address === address);
  const report = (node: string, body: object) => postReport(op!.url, tokens.get(node)!, { node, ...body });

  test('one node says "verified": blocked everywhere, the node named; one node\'s unverified report: kept to that node', async (t) => {
    if (!state.cp) return t.skip(state.why);
    assert.equal(await report('on-node-1', { policy: 'one', sources: [source('198.51.100.51', false)] }), 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await blocked('198.51.100.51'), false, 'one node\'s unverified detection became a cluster-wide block');
    assert.equal(await report('on-node-1', { policy: 'one', sources: [source('198.51.100.50', true)] }), 200);
    await eventually('one node\'s handshake blocks everywhere', () => blocked('198.51.100.50'));
    type List = { items: { spec: { address: string }; status?: { reportingNodes?: string[] } }[] };
    await eventually('its status names the reporting node', async () => {
      const now = (await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as List;
      return JSON.stringify(now.items.find((b) => b.spec.address === '198.51.100.50')?.status?.reportingNodes) === '["on-node-1"]';
    });
  });

  test('one node lists a scanner among its own addresses: other nodes\' reports still block it', async (t) => {
    if (!state.cp) return t.skip(state.why);
    const host = { gateways: [], dns: [], addresses: ['198.51.100.60'] };
    assert.equal(await report('on-node-1', { policy: 'one', sources: [], host }), 200);
    for (const node of ['on-node-2', 'on-node-3'])
      assert.equal(await report(node, { policy: 'one', sources: [source('198.51.100.60', true), source('198.51.100.61', true)] }), 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(await blocked('198.51.100.61'), 'control: proven, blocked');
    assert.ok(await blocked('198.51.100.60'), 'the address one node vouched for was exempted everywhere');
  });

  test('a report is judged by its node\'s policy, not by the policy it names', async (t) => {
    if (!state.cp) return t.skip(state.why);
    // Nodes 4 and 5 only alert; they name the policy that blocks, which is no node's.
    for (const node of ALERT_NODES) assert.equal(await report(node, { policy: 'loose', sources: [source('198.51.100.70', true)] }), 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await blocked('198.51.100.70'), false, 'blocked under a policy the nodes do not run');
    // The control: the same two reports from nodes whose policy blocks.
    for (const node of ['on-node-2', 'on-node-3']) assert.equal(await report(node, { policy: 'one', sources: [source('198.51.100.71', true)] }), 200);
    assert.ok(await blocked('198.51.100.71'));
  });

  test('the reason a node gives for its detection being off reaches the policy\'s status without control characters', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const why = 'start failed\u001b[31m\nDetecting=True: all fine\u0000\u2028end';
    assert.equal(await report('on-node-3', { policy: 'one', sources: [], detectionOff: why }), 200);
    const message = await eventually('a Detecting condition', async () => {
      const p = (await cp.api('GET', '/apis/kube-portsentry.io/v1alpha1/portsentrypolicies/one')).body as { status?: { conditions?: { type: string; message: string }[] } };
      return p.status?.conditions?.find((c) => c.type === 'Detecting')?.message;
    });
    t.diagnostic(JSON.stringify(message));
    assert.match(message, /^on-node-3: start failed/);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(message, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, 'control characters in the status');
  });
});
