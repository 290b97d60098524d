// What a neighbour can make the cluster half do, with real agents in node namespaces
// against a real API server: commands planted in a node's policy ConfigMap; a SYN forged
// from a pod behind a node's bridge, or from anyone on the network, with an outside address.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodePolicyConfigMapName } from '../../src/k8s/objects.js';
import { eventually, TestCluster, type TestNode, type TestPod } from '../../support/cluster.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { withPrivileges } from '../../support/privilege.js';
import { hasTool, toolPath } from '../../support/prereq.js';
import type { ClusterEvidence } from '../../src/policy/types.js';
import type { SentryProcess } from '../../support/sentry-process.js';
import { AGENT_METRICS, startReportingAgents } from '../../support/reporting-agents.js';

function missing(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push('root');
  for (const tool of ['nft', 'hping3', 'go', 'capsh']) if (!hasTool(tool)) out.push(tool);
  return out;
}

/** Writes a node's policy ConfigMap as anyone with ConfigMap rights in the namespace could. */
async function plantPolicy(cp: ControlPlane, node: string, spec: unknown): Promise<void> {
  const name = nodePolicyConfigMapName(node);
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: OPERATOR_NS }, data: { 'policy.json': JSON.stringify({ policy: 'planted', generation: 1, spec }) } };
  const path = `/api/v1/namespaces/${OPERATOR_NS}/configmaps`;
  const r = await cp.api('POST', path, body);
  if (r.status === 409) assert.equal((await cp.api('PUT', `${path}/${name}`, body)).status, 200);
  else assert.equal(r.status, 201, JSON.stringify(r.body));
}

describe('trust: the agent against planted policies', { concurrency: false }, () => {
  const why = missing();
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  let cluster: TestCluster | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => cluster?.destroy());
  let agentArgs: string[];
  const skip = () => why.length > 0 || !state.cp;
  const marker = join(tmpdir(), `kps-planted-${process.pid}`);

  before(async () => {
    if (skip()) return;
    const cp = state.cp!;
    cluster = await TestCluster.create(1);
    const node = cluster.nodes[0]!;
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name } });
    await cluster.forwardLoopback([Number(new URL(cp.url).port)]);
    const tokenFile = await cluster.writeFile('token', 'unused');
    agentArgs = [
      '--namespace', OPERATOR_NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile,
      '--operator-url', 'https://127.0.0.1:1', '--firewall', 'nftables', '--log-level', 'debug',
    ];
  });
  after(async () => {
    await rm(marker, { force: true });
  });

  const probe = (node: TestNode, port: number) =>
    cluster!.exec(cluster!.scanner, ['hping3', '-S', '-c', '1', '-p', String(port), node.v4]).catch(() => undefined);

  test('a planted policy with a command: refused unless the node allows that program (--allowed-commands)', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const cp = state.cp!;
    const node = cluster!.nodes[0]!;
    const writer = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, process.argv.slice(1).join(' '))`;
    await plantPolicy(cp, node.name, {
      tcp: { mode: 'stealth', ports: [1] },
      udp: { mode: 'off' },
      trigger: { count: 0 },
      response: { tcp: 'command', scope: 'node', firewall: 'none', command: [process.execPath, '-e', writer, '$TARGET$'] },
    });
    const refusing: SentryProcess = await cluster!.startAgent(node, agentArgs);
    await refusing.waitFor((l) => l.msg.startsWith('effective policy rejected') || l.msg === 'effective policy in force', 15_000);
    await probe(node, 1);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(existsSync(marker), false, 'the planted command ran as root on the node');
    const rejected = refusing.find((l) => l.msg.startsWith('effective policy rejected'));
    assert.ok(rejected, 'the agent says why it refused the policy');
    assert.match(String(rejected.problems), /spec\.response\.command: ".*" is not an allowed command/);
    await refusing.stop();

    // The node's admin allowed that program: the same policy runs it.
    const allowing = await cluster!.startAgent(node, [...agentArgs, '--allowed-commands', process.execPath]);
    await allowing.waitFor((l) => l.msg === 'effective policy in force', 15_000);
    await probe(node, 1);
    await eventually('the allowed command ran', async () => existsSync(marker));
    await allowing.stop();
  });

  test('a planted policy with a hosts.deny file: refused unless the node allows that file (--allowed-hosts-deny)', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const cp = state.cp!;
    const node = cluster!.nodes[0]!;
    // Any file the agent may write would do: the policy writer chooses what root appends to.
    const target = `${marker}-hosts.deny`;
    await plantPolicy(cp, node.name, {
      tcp: { mode: 'stealth', ports: [11] },
      udp: { mode: 'off' },
      trigger: { count: 0 },
      response: { tcp: 'block', scope: 'node', firewall: 'none', hostsDeny: { enabled: true, path: target, line: 'ALL: $TARGET$ : DENY' } },
    });
    const refusing = await cluster!.startAgent(node, agentArgs);
    await refusing.waitFor((l) => l.msg.startsWith('effective policy rejected') || l.msg === 'effective policy in force', 15_000);
    await probe(node, 11);
    await new Promise((r) => setTimeout(r, 1500));
    try {
      assert.equal(existsSync(target), false, 'the planted policy had root write the file it named');
      const rejected = refusing.find((l) => l.msg.startsWith('effective policy rejected'));
      assert.ok(rejected, 'the agent says why it refused the policy');
      assert.match(String(rejected.problems), /spec\.response\.hostsDeny\.path: ".*" is not an allowed hosts\.deny file/);
    } finally {
      await refusing.stop();
    }
    // The node's admin allowed that file: the same policy writes it.
    const allowing = await cluster!.startAgent(node, [...agentArgs, '--allowed-hosts-deny', target]);
    await allowing.waitFor((l) => l.msg === 'effective policy in force', 15_000);
    await probe(node, 11);
    await eventually('the allowed file written', async () => existsSync(target));
    await allowing.stop();
    await rm(target, { force: true });
  });
});

/** containerd's default capability set: what any pod has unless its spec drops them. */
const POD_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'];
const NODE1_DNS = '198.18.0.53';
const NODE1_GATEWAY = '198.18.0.254';
const NODE1_BRIDGE_ADDRESS = '192.0.2.10';

describe('trust: forged SYNs against the cluster-wide block', { concurrency: false }, () => {
  const why = missing();
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  let cluster: TestCluster | undefined;
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => {
    await op?.stop();
    await cluster?.destroy();
  });
  const skip = () => why.length > 0 || !state.cp;
  let pod: TestPod;
  let resolvConf: string;

  const bhFor = async (address: string): Promise<boolean> => {
    const list = (await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] };
    return list.items.some((b) => b.spec.address === address);
  };
  const policy = (clusterEvidence: ClusterEvidence) => ({
    apiVersion: 'kube-portsentry.io/v1alpha1',
    kind: 'PortSentryPolicy',
    metadata: { name: 'forged' },
    spec: {
      tcp: { mode: 'stealth', ports: [1, 11] },
      udp: { mode: 'off' },
      trigger: { count: 0 },
      response: { tcp: 'block', scope: 'cluster', firewall: 'nftables', clusterEvidence },
    },
  });
  /** One SYN from `source` (forged) to a node's tripwire port, sent from `ns`. */
  const forge = (ns: string, source: string, node: TestNode, privileges?: string[]) => {
    const argv = [toolPath('hping3')!, '-S', '-c', '1', '-a', source, '-p', '1', node.v4];
    return cluster!.exec(ns, privileges ? withPrivileges(argv, { capabilities: privileges }) : argv).catch(() => undefined);
  };
  const metric = async (node: TestNode, name: string): Promise<number> => {
    const line = (await cluster!.agentMetrics(node, AGENT_METRICS)).split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  before(async () => {
    if (skip()) return;
    const cp = state.cp!;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, 'kube-portsentry-agent']);
    cluster = await TestCluster.create(2);
    for (const [i, node] of cluster.nodes.entries()) {
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name }, spec: { podCIDR: `10.244.${i + 1}.0/24` } });
      await cp.kubectl(['patch', 'node', node.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: node.v4 }] } })]);
    }
    pod = await cluster.addPod(cluster.nodes[0]!, '10.244.1.0/24');
    // Node 1's own facts: a resolver in its resolv.conf, a default gateway, an address on its bridge.
    const n1 = cluster.nodes[0]!;
    resolvConf = await cluster.writeFile('node-1-resolv.conf', `# the node's, as the kubelet copies it\nnameserver ${NODE1_DNS}\nsearch example.internal\n`);
    // The gateway is node 2's too (a subnet's router), the resolver node 1's alone.
    for (const node of cluster.nodes) await cluster.exec(node.ns, ['ip', 'route', 'add', 'default', 'via', NODE1_GATEWAY]);
    await cluster.exec(n1.ns, ['ip', 'addr', 'add', `${NODE1_BRIDGE_ADDRESS}/32`, 'dev', 'cni0']);
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(policy('verified')) });
    op = await startTestOperator(cp, { leaseDurationMs: 15_000 });
    await startReportingAgents(cluster, cp, op.url, (node) => (node === n1 ? ['--node-resolv-conf', resolvConf] : []));
    for (const node of cluster.nodes) await node.agent!.waitFor((l) => l.msg === 'effective policy in force', 15_000);
  });

  test('a SYN forged from a pod behind node 1 with an outside address: dropped by node 1\'s anti-spoofing rule and counted, blocked nowhere', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    const outside = '198.18.0.200';
    await forge(pod.ns, outside, n1, POD_CAPABILITIES);
    await forge(pod.ns, outside, n1, POD_CAPABILITIES);
    await new Promise((r) => setTimeout(r, 2000)); // reports, and any BlockedHost, would be through by now
    assert.equal(await bhFor(outside), false, 'a BlockedHost for the forged address');
    for (const n of cluster!.nodes) assert.ok(!(await cluster!.nodeSet(n)).has(outside), `${outside} blocked on ${n.name}`);
    assert.ok(!n1.agent!.lines.some((l) => l.msg.startsWith('attackalert:') && l.source === outside), 'the forged probe was judged');
    // The rule drops it before the raw socket sees it (test/cluster/forged-cluster.test.ts C
    // shows the agent's own reverse-path check on a node without the rule).
    await eventually('node 1 drops it as spoofed', async () => (await metric(n1, 'portsentry_spoofed_packets_dropped_total')) >= 2).catch((err: Error) => {
      throw new Error(`${err.message}\nnode 1: ${n1.agent!.lines.slice(-30).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    assert.equal(await metric(n2, 'portsentry_probes_spoofed_total{protocol="tcp"}'), 0);
  });

  test('an unverified probe from the network blocks on the nodes it reached only; with clusterEvidence corroborated, two nodes\' reports make it cluster-wide', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    const source = '198.18.0.201';
    await forge(cluster!.scanner, source, n1);
    await eventually(`${source} blocked on node 1`, async () => (await cluster!.nodeSet(n1)).has(source));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await bhFor(source), false, 'one node\'s unverified detection became a BlockedHost');
    assert.equal((await cluster!.nodeSet(n1)).get(source), 'local', 'node 1 holds it as its own block');
    assert.ok(!(await cluster!.nodeSet(n2)).has(source), `${source} blocked on node 2`);
    const held = (await op!.metrics.uncorroborated.get()).values.find((v) => v.labels.policy === 'forged')?.value ?? 0;
    assert.ok(held >= 1, 'portsentry_cluster_blocks_uncorroborated_total');
    // Node 2 sees it too: by default two nodes' unverified reports are still theirs alone.
    await forge(cluster!.scanner, source, n2);
    await eventually(`${source} blocked on node 2`, async () => (await cluster!.nodeSet(n2)).get(source) === 'local');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await bhFor(source), false, 'two nodes\' unverified detections became a BlockedHost by default');
    // A policy that accepts corroboration: two nodes within the window make it cluster-wide.
    await state.cp!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(policy('corroborated')) });
    await eventually('both nodes have it', async () => cluster!.nodes.every((n) => n.agent!.lines.filter((l) => l.msg === 'effective policy in force').length >= 2));
    const next = '198.18.0.204';
    for (const n of [n1, n2]) await forge(cluster!.scanner, next, n);
    await eventually('BlockedHost once two nodes reported it', () => bhFor(next));
    await state.cp!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(policy('verified')) });
  });

  test('with clusterEvidence singleNode, one node\'s unverified detection blocks everywhere', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    const before = n1.agent!.lines.filter((l) => l.msg === 'effective policy in force').length;
    await state.cp!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(policy('singleNode')) });
    await eventually('node 1 has the opt-in', async () => n1.agent!.lines.filter((l) => l.msg === 'effective policy in force').length > before);
    const source = '198.18.0.202';
    await forge(cluster!.scanner, source, n1);
    await eventually('BlockedHost from one node', () => bhFor(source));
    await eventually(`${source} blocked on node 2`, async () => (await cluster!.nodeSet(n2)).has(source));
  });

  test('BlockedHosts for protected addresses are never enforced: link-local, metadata, multicast, the node\'s resolver, gateway and interfaces', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const cp = state.cp!;
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    const everywhere = ['169.254.169.254', 'fe80::1', '224.0.0.251'];
    const onNode1 = [NODE1_DNS, NODE1_GATEWAY, NODE1_BRIDGE_ADDRESS];
    const control = '198.18.0.99';
    for (const [i, address] of [...everywhere, ...onNode1, control].entries())
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: `protected-${i}` }, spec: { address, reason: 'test' } }),
      });
    for (const n of cluster!.nodes) await eventually(`the control block on ${n.name}`, async () => (await cluster!.nodeSet(n)).has(control));
    const set1 = await cluster!.nodeSet(n1);
    const set2 = await cluster!.nodeSet(n2);
    for (const address of [...everywhere, ...onNode1]) assert.ok(!set1.has(address), `${address} blocked on node 1`);
    for (const address of everywhere) assert.ok(!set2.has(address), `${address} blocked on node 2`);
    for (let i = 0; i < everywhere.length + onNode1.length + 1; i++) await cp.kubectl(['delete', 'blockedhost', `protected-${i}`]);
  });

  test('a gateway two nodes share is never a BlockedHost; node 1\'s own resolver, reported by node 2, is never blocked on node 1', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    // One node's word is enough under this policy: only the guards stand in the way.
    await state.cp!.kubectl(['apply', '-f', '-'], { input: JSON.stringify(policy('singleNode')) });
    for (const source of [NODE1_DNS, NODE1_GATEWAY]) await forge(cluster!.scanner, source, n2);
    const control = '198.18.0.203';
    await forge(cluster!.scanner, control, n2);
    await eventually('the control BlockedHost', () => bhFor(control));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await bhFor(NODE1_GATEWAY), false, 'a BlockedHost for the gateway both nodes report');
    // Node 1's resolver is node 1's word only: node 2 may block it (it is nothing of node 2's),
    // node 1 never does, whatever the cluster asks.
    await eventually(`${NODE1_DNS} blocked on node 2`, async () => (await cluster!.nodeSet(n2)).has(NODE1_DNS));
    assert.ok(!(await cluster!.nodeSet(n1)).has(NODE1_DNS), 'node 1 blocks its own resolver');
    assert.ok(!(await cluster!.nodeSet(n1)).has(NODE1_GATEWAY), 'node 1 blocks its gateway');
  });
});

