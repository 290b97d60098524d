// Pod addresses are protected whatever the CNI. Calico IPAM's IPPools, Cilium's
// cluster-pool, AWS VPC CNI and Azure CNI allocate pod addresses themselves and leave
// Node.spec.podCIDR empty or unused; the agents and the operator protect the addresses of
// running pods (status.podIPs, watched; hostNetwork pods have the node's) and the ranges
// given with --pod-cidr (the chart's cluster.podCidrs), and warn when Nodes carry no
// podCIDR and no range was given. The control: an ordinary address in the same reports is
// blocked. Real API server, real operator report endpoint, pod-bound agent tokens.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { before, describe, test } from 'node:test';
import { connectApi } from '../../src/k8s/api-connection.js';
import { ClusterFacts } from '../../src/k8s/cluster-facts.js';
import { ProtectedSet, emptyFacts } from '../../src/cluster/protected-set.js';
import { createLogger } from '../../src/log/logger.js';
import { eventually } from '../../support/cluster.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { podBoundToken } from '../../support/tokens.js';

const AGENT_SA = 'kube-portsentry-agent';
const COREDNS_POD_IP = '10.88.3.7';
const HOST_NETWORK_POD_IP = '192.0.2.13';
const FLAG_RANGE = '10.99.0.0/16';

async function runningPod(cp: ControlPlane, name: string, ip: string, node: string, hostNetwork = false): Promise<void> {
  const r = await cp.api('POST', '/api/v1/namespaces/kube-system/pods', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { nodeName: node, hostNetwork, containers: [{ name: 'main', image: 'main' }] },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await cp.kubectl(['patch', 'pod', '-n', 'kube-system', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } })]);
}

/** The agents' guard as agent.ts builds it: ClusterFacts from the API, plus the node's own facts. */
async function agentGuard(cp: ControlPlane, extraPodCidrs: string[] = [], log = createLogger('silent')): Promise<{ guard: ProtectedSet; facts: ClusterFacts }> {
  const facts = new ClusterFacts(await connectApi(cp.kubeconfig), log, () => undefined, { podCidrs: extraPodCidrs });
  facts.start();
  await facts.synced();
  return { guard: new ProtectedSet({ ...emptyFacts(), ...facts.facts() }), facts };
}

describe('pod addresses are protected whatever the CNI', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, AGENT_SA]);
    // Three nodes as Calico or Cilium (cluster-pool) leave them: addresses, no podCIDR.
    for (const [i, name] of ['pa-node-1', 'pa-node-2', 'pa-node-3'].entries()) {
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      await cp.kubectl(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: `192.0.2.${11 + i}` }] } })]);
    }
    await cp.kubectl(['create', 'namespace', 'kube-system']).catch(() => undefined);
    await cp.kubectl(['create', 'serviceaccount', '-n', 'kube-system', 'default']).catch(() => undefined);
    // CoreDNS running on node 3 with an address from the CNI's pool; a hostNetwork pod has node 3's.
    await runningPod(cp, 'coredns-1', COREDNS_POD_IP, 'pa-node-3');
    await runningPod(cp, 'host-agent', HOST_NETWORK_POD_IP, 'pa-node-3', true);
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'pa' },
        spec: { tcp: { mode: 'stealth', ports: [1] }, udp: { mode: 'off' }, trigger: { count: 0 }, response: { tcp: 'block', scope: 'cluster' } },
      }),
    });
    op = await startTestOperator(cp, { podCidrs: [FLAG_RANGE] });
  });

  test('the agents\' guard protects a running pod\'s address, and the --pod-cidr ranges', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const { guard, facts } = await agentGuard(cp, [FLAG_RANGE]);
    facts.stop();
    t.diagnostic(`reason for ${COREDNS_POD_IP}: ${String(guard.reason(COREDNS_POD_IP))}; for 10.99.1.1: ${String(guard.reason('10.99.1.1'))}`);
    assert.equal(guard.reason('192.0.2.11'), 'nodes', 'the control: a node address');
    assert.equal(guard.reason(COREDNS_POD_IP), 'pods', 'the pod address is not protected');
    assert.equal(guard.reason('10.99.1.1'), 'podCidrs', 'the --pod-cidr range is not protected');
    assert.equal(guard.reason('10.88.3.8'), null, 'an address no pod has');
  });

  test('a pod that stops running, or is deleted, is no longer protected; a new one is', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const { facts } = await agentGuard(cp);
    try {
      const protectedNow = (ip: string) => new ProtectedSet({ ...emptyFacts(), ...facts.facts() }).reason(ip) === 'pods';
      await runningPod(cp, 'web-1', '10.88.4.9', 'pa-node-1');
      await eventually('the new pod protected', async () => protectedNow('10.88.4.9'));
      await cp.kubectl(['patch', 'pod', '-n', 'kube-system', 'web-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
      await eventually('a pod that stopped running, not protected', async () => !protectedNow('10.88.4.9'));
      assert.ok(protectedNow(COREDNS_POD_IP));
      assert.ok(!protectedNow(HOST_NETWORK_POD_IP), 'a hostNetwork pod\'s address is its node\'s, protected as such');
    } finally {
      facts.stop();
    }
  });

  test('Nodes with no podCIDR and no --pod-cidr: a warning that says what to do', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const { facts } = await agentGuard(cp, [], createLogger('info', 'test', 'json', out));
    try {
      await eventually('the warning', async () => text.includes('podCIDR'), 5000);
    } finally {
      facts.stop();
    }
    const line = JSON.parse(text.split('\n').find((l) => l.includes('podCIDR'))!) as { level: string; msg: string };
    assert.equal(line.level, 'warn');
    assert.match(line.msg, /cluster\.podCidrs/);
  });

  test('two nodes\' reports of CoreDNS\'s address: no BlockedHost; an ordinary address in the same reports is blocked', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const now = Date.now();
    const source = (address: string) => ({ source: address, probes: [{ protocol: 'tcp', port: 1, type: 'connect', time: now }], count: 1, firstSeen: now, lastSeen: now, verified: true, blocked: true });
    for (const node of ['pa-node-1', 'pa-node-2']) {
      const { token } = await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: AGENT_SA, pod: `agent-${node}`, node });
      assert.equal(await postReport(op!.url, token, { node, policy: 'pa', sources: [source(COREDNS_POD_IP), source('10.99.7.7'), source('192.0.2.13'), source('198.51.100.90')] }), 200);
    }
    const list = async () => ((await cp.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] }).items.map((b) => b.spec.address);
    await eventually('the control BlockedHost', async () => (await list()).includes('198.51.100.90'));
    const made = await list();
    assert.ok(!made.includes(COREDNS_POD_IP), 'a BlockedHost for the CoreDNS pod');
    assert.ok(!made.includes('10.99.7.7'), 'a BlockedHost in the --pod-cidr range');
    assert.ok(!made.includes('192.0.2.13'), 'a BlockedHost for a node address');
  });
});
