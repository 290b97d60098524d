// The kernel fast path in the agent (response.kernelFastPath on a cluster policy), with
// real agents in node namespaces, a real operator and a real API server: the trap rules
// live in the agent's node table beside the BlockedHosts' entries; a trapped source is
// blocked on its node at the first packet, tagged local, and reported at once as what it
// is (one unverified packet); the protected addresses (other nodes, the pod ranges) are in
// the rules' ignore sets and a forged source that would not route back is never blocked;
// the rules follow policy edits.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { AGENT_TABLE, eventually, TestCluster, type TestNode } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { missingPrerequisites, toolPath } from '../../support/prereq.js';
import type { Privileges } from '../../support/privilege.js';
import { AGENT_METRICS, startReportingAgents } from '../../support/reporting-agents.js';

const TRIPWIRE = 1;
/** What the chart grants the agent (templates/agent-daemonset.yaml): uid 0 with NET_RAW and NET_ADMIN only. */
const AGENT_PRIVILEGES: Privileges = { capabilities: ['NET_RAW', 'NET_ADMIN'] };
/** A closed port that is no tripwire: the kernel answers a SYN with a RST. */
const CLOSED = 2;

const policy = (tcp: string, response: string) =>
  JSON.stringify({
    apiVersion: 'kube-portsentry.io/v1alpha1',
    kind: 'PortSentryPolicy',
    metadata: { name: 'fast' },
    spec: {
      tcp: JSON.parse(tcp) as unknown,
      udp: { mode: 'off' },
      trigger: { count: 0 },
      response: { tcp: 'block', scope: 'cluster', firewall: 'nftables', kernelFastPath: true, ...(JSON.parse(response) as object) },
    },
  });

describe('the kernel fast path in the agent', { concurrency: false }, () => {
  const why = missingPrerequisites({ root: true, tools: ['nft', 'hping3', 'go', 'capsh'] });
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  let cluster: TestCluster | undefined;
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => {
    await op?.stop();
    await cluster?.destroy();
  });
  const skip = () => why.length > 0 || !state.cp;
  let n1: TestNode;
  let n2: TestNode;
  let n3: TestNode;

  const applyPolicy = (tcp: string, response = '{}') => state.cp!.kubectl(['apply', '-f', '-'], { input: policy(tcp, response) });
  const bhFor = async (address: string): Promise<boolean> => {
    const list = (await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] };
    return list.items.some((b) => b.spec.address === address);
  };
  const metric = async (node: TestNode, name: string): Promise<number> => {
    const line = (await cluster!.agentMetrics(node, AGENT_METRICS)).split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const uncorroborated = async (): Promise<number> => (await op!.metrics.uncorroborated.get()).values.reduce((sum, v) => sum + v.value, 0);
  /** hping3 -c 1 from the scanner namespace: answers received (NaN when its output says nothing). */
  const hping = async (to: TestNode, port: number, from?: string): Promise<number> => {
    const r = await cluster!
      .exec(cluster!.scanner, [toolPath('hping3')!, '-S', '-c', '1', '-p', String(port), ...(from ? ['-a', from] : []), to.v4])
      .catch((e: Error) => ({ stdout: '', stderr: e.message }));
    return Number(/(\d+) packets received/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? NaN);
  };
  const trapChain = (node: TestNode) => cluster!.exec(node.ns, ['nft', 'list', 'chain', 'inet', AGENT_TABLE, 'trap_hook']).then((r) => r.stdout, () => '');

  before(async () => {
    if (skip()) return;
    const cp = state.cp!;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, 'kube-portsentry-agent']);
    cluster = await TestCluster.create(3);
    [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
    for (const [i, node] of cluster.nodes.entries()) {
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name }, spec: { podCIDR: `10.244.${i + 1}.0/24` } });
      await cp.kubectl(['patch', 'node', node.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: node.v4 }] } })]);
    }
    // Node 1 routes node 2's pods through node 2, as a host-gateway CNI does: a source in
    // that range passes the reverse-path check on node 1, and only the protected set stops it.
    await cluster.exec(n1.ns, ['ip', 'route', 'add', '10.244.2.0/24', 'via', n2.v4]);
    await applyPolicy(`{ "mode": "stealth", "ports": [${TRIPWIRE}] }`);
    op = await startTestOperator(cp, { leaseDurationMs: 15_000 });
    await startReportingAgents(cluster, cp, op.url, () => [], undefined, AGENT_PRIVILEGES);
    for (const node of cluster.nodes) await node.agent!.waitFor((l) => l.msg === 'effective policy in force', 15_000);
  });

  test('a scanner\'s first SYN to node 1 is dropped by the kernel; the source is blocked there, tagged local, and reported', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const agent = n1.agent!;
    assert.ok(agent.find((l) => l.msg === 'watching ports' && l.protocol === 'tcp' && l.kernelFastPath === true), 'the agent did not put tcp on the fast path');
    assert.ok(!agent.find((l) => /kernelFastPath/.test(l.msg)), 'the agent refused the fast path');
    const source = '198.18.0.2'; // the scanner's own: answers come back to it
    assert.equal(await hping(n1, CLOSED, source), 1, 'before: a closed port answers with a RST');
    const reportsBefore = await uncorroborated();
    assert.equal(await hping(n1, TRIPWIRE, source), 0, 'the first probe itself got an answer');
    assert.equal(await hping(n1, CLOSED, source), 0, 'after: the scanner still gets answers');
    await agent.waitFor((l) => l.msg === 'response in place' && l.source === source && l.blockedInKernel === true);
    const tag = await eventually('the kernel\'s entry retagged local', async () => (await cluster!.nodeSet(n1)).get(source) === 'local' || undefined);
    assert.equal(tag, true);
    // One unverified packet seen by one node: under the default clusterEvidence the operator keeps it to that node.
    await eventually('the operator heard of it and kept it local', async () => (await uncorroborated()) > reportsBefore);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await bhFor(source), false, 'a BlockedHost from one node\'s kernel trap');
    for (const node of [n2, n3]) assert.equal((await cluster!.nodeSet(node)).has(source), false, `${node.name} blocks it`);
    // The periodic and a restart's reconcile leave a local entry to its timeout.
    await agent.stop();
    await startReportingAgentOn(n1);
    assert.equal((await cluster!.nodeSet(n1)).get(source), 'local', 'the trapped source was lifted by the restarted agent');
  });

  const startReportingAgentOn = async (node: TestNode) => {
    await startReportingAgents(cluster!, state.cp!, op!.url, () => [], [node], AGENT_PRIVILEGES);
    await node.agent!.waitFor((l) => l.msg === 'effective policy in force', 15_000);
  };

  test('abuse: forged SYNs from another node\'s address and from a pod range are never trapped; one that would not route back is spoofed; a forged outside source stays local', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const ignored = await cluster!.exec(n1.ns, ['nft', 'list', 'set', 'inet', AGENT_TABLE, 'ignore4']).then((r) => r.stdout);
    t.diagnostic(ignored.replace(/\s+/g, ' '));
    const spoofedBefore = await metric(n1, 'portsentry_probes_spoofed_total{protocol="tcp"}');
    const reportsBefore = await uncorroborated();
    const protectedSources = [n2.v4, '10.244.2.7', '10.244.1.9'];
    for (const from of protectedSources) await hping(n1, TRIPWIRE, from);
    // No route back on node 1 (no default route): the kernel's fib check calls it forged.
    await hping(n1, TRIPWIRE, '203.0.113.5');
    // The control: a forged source on the nodes' own network, which does route back.
    const forged = '198.18.0.81';
    await hping(n1, TRIPWIRE, forged);
    await eventually('the forged LAN source blocked on node 1', async () => (await cluster!.nodeSet(n1)).has(forged));
    await eventually('the route-less source counted as spoofed', async () => (await metric(n1, 'portsentry_probes_spoofed_total{protocol="tcp"}')) > spoofedBefore);
    await eventually('the operator kept the forged source to node 1', async () => (await uncorroborated()) > reportsBefore);
    await new Promise((r) => setTimeout(r, 1000));
    const set = await cluster!.nodeSet(n1);
    for (const from of [...protectedSources, '203.0.113.5']) assert.equal(set.has(from), false, `${from} blocked on node 1`);
    assert.equal(await bhFor(forged), false, 'a forged source trapped on one node became a BlockedHost');
    for (const node of [n2, n3]) assert.equal((await cluster!.nodeSet(node)).has(forged), false, `${node.name} blocks the forged source`);
  });

  test('abuse: a node that joins is protected in the rules within seconds; a SYN forged from its address is not trapped', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const joined = '198.18.0.50';
    const t0 = Date.now();
    await state.cp!.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-late' } });
    await state.cp!.kubectl(['patch', 'node', 'node-late', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: joined }] } })]);
    await eventually('the new node\'s address in node 1\'s ignore set', async () => (await cluster!.exec(n1.ns, ['nft', 'list', 'set', 'inet', AGENT_TABLE, 'ignore4'])).stdout.includes(joined), 10_000);
    t.diagnostic(`in the ignore set ${Date.now() - t0} ms after the Node was created`);
    await hping(n1, TRIPWIRE, joined);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await cluster!.nodeSet(n1)).has(joined), false, 'a SYN forged from a node that joined was trapped');
  });

  test('the rules follow policy edits: new ports, another evidence rule, and off when the action is no longer block', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const edited = Date.now();
    await applyPolicy(`{ "mode": "stealth", "ports": [3] }`, '{ "clusterEvidence": "singleNode" }');
    const source = '198.18.0.3';
    // Port 3 is trapped once the edit is in force: the first SYN there from a new source is dropped.
    await eventually('port 3 trapped', async () => (await cluster!.exec(n1.ns, ['nft', 'list', 'set', 'inet', AGENT_TABLE, 'tripwire_tcp'])).stdout.includes('elements = { 3 }'), 5_000);
    t.diagnostic(`tripwire ports in the kernel ${Date.now() - edited} ms after kubectl apply`);
    assert.equal(await hping(n1, TRIPWIRE, '198.18.0.4'), 1, 'port 1 is no tripwire any more: its RST comes back');
    assert.equal((await cluster!.nodeSet(n1)).has('198.18.0.4'), false, 'blocked at a port that is no tripwire any more');
    assert.equal(await hping(n1, 3, source), 0, 'the first SYN to the new tripwire port got an answer');
    // singleNode: one node's report blocks everywhere, and node 1's own entry becomes the cluster's in place.
    await eventually('blocked on every node', async () => {
      for (const node of [n2, n3]) if (!(await cluster!.nodeSet(node)).has(source)) return false;
      return true;
    });
    await eventually('node 1\'s entry tagged cluster', async () => (await cluster!.nodeSet(n1)).get(source) === 'cluster');
    assert.ok(await bhFor(source));

    await applyPolicy(`{ "mode": "stealth", "ports": [3] }`, '{ "tcp": "alert" }');
    await eventually('the trap rules removed', async () => !(await trapChain(n1)).includes('jump trap'), 5_000);
    assert.equal(await hping(n1, CLOSED, source), 0, 'blocked sources stay blocked');
    assert.equal(await hping(n2, CLOSED, source), 0);
    // A new source to port 3: the raw path alerts, nothing blocks it.
    assert.equal(await hping(n1, 3, '198.18.0.5'), 1, 'the tripwire port trapped after the action became alert');
    await n1.agent!.waitFor((l) => l.msg === 'scan detected' && l.source === '198.18.0.5');
    assert.equal((await cluster!.nodeSet(n1)).has('198.18.0.5'), false, 'blocked after the action became alert');
  });
});
