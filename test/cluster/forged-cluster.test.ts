// Forged packets against the cluster-wide block, with real agents in node namespaces, a
// real operator and a real API server, under a policy that accepts corroboration
// (clusterEvidence: corroborated), where two nodes' reports are enough:
//  A. one UDP datagram with a forged source to the LAN broadcast address (or ff02::1)
//     reaches the bind-mode UDP tripwire of every node at once: it is addressed to no node
//     (IP_PKTINFO / IPV6_RECVPKTINFO say so), so no node counts it, and nothing is blocked;
//  B. a pod with NET_RAW (containerd's default set) behind node 1 forges SYNs with an
//     outside source to nodes 2 and 3: node 1's agent drops what a workload sends with a
//     source that routes out by the node's uplink, so nodes 2 and 3 never see them;
//  C. a pod forges one UDP datagram to its own node's bind-mode tripwire: the datagram's
//     interface says it came from the pod's side, where the forged source does not route
//     back: counted as spoofed, never blocked (node 2 runs without its anti-spoofing rule,
//     to show the agent's own check); behind node 1, the rule drops it first.
// The controls, what must still be blocked: one forged datagram to one node blocks there
// (locally); forged SYNs from the nodes' own network to two nodes are corroborated into a
// BlockedHost (what corroboration cannot tell from a scan: see the README).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { eventually, TestCluster, type TestNode, type TestPod } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { withPrivileges } from '../../support/privilege.js';
import { missingPrerequisites, toolPath } from '../../support/prereq.js';
import { AGENT_METRICS, startReportingAgents } from '../../support/reporting-agents.js';

/** containerd's default capability set: what any pod has unless its spec drops them. */
const POD_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'];
const UDP_TRIPWIRE = 7001;

describe('forged packets do not become cluster-wide blocks', { concurrency: false }, () => {
  const why = missingPrerequisites({ root: true, tools: ['nft', 'hping3', 'go', 'capsh'] });
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  let cluster: TestCluster | undefined;
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => {
    await op?.stop();
    await cluster?.destroy();
  });
  const skip = () => why.length > 0 || !state.cp;
  let pods: [TestPod, TestPod];

  const bhFor = async (address: string): Promise<boolean> => {
    const list = (await state.cp!.api('GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts')).body as { items: { spec: { address: string } }[] };
    return list.items.some((b) => b.spec.address === address);
  };
  const metric = async (node: TestNode, name: string): Promise<number> => {
    const line = (await cluster!.agentMetrics(node, AGENT_METRICS)).split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const notLocal = (node: TestNode) => metric(node, 'portsentry_packets_dropped_total{protocol="udp",reason="not-local"}');
  const blockedAnywhere = async (address: string) => {
    for (const n of cluster!.nodes) if ((await cluster!.nodeSet(n)).has(address)) return n.name;
    return null;
  };
  /** One UDP datagram from `source` (an address the scanner namespace takes for it) to `to`. */
  const udpFromScanner = async (source: string, to: string, v6 = false) => {
    await cluster!.exec(cluster!.scanner, ['ip', ...(v6 ? ['-6'] : []), 'addr', 'add', `${source}/${v6 ? 128 : 32}`, 'dev', 'eth0', ...(v6 ? ['nodad'] : [])]);
    const script = `const s = require('node:dgram').createSocket(${JSON.stringify(v6 ? 'udp6' : 'udp4')});
      s.bind({ address: ${JSON.stringify(source)} }, () => { ${v6 ? '' : 's.setBroadcast(true);'}
        s.send('x', ${UDP_TRIPWIRE}, ${JSON.stringify(to)}, (e) => { if (e) { console.error(e.message); process.exit(1); } s.close(); }); });`;
    await cluster!.exec(cluster!.scanner, [process.execPath, '-e', script]);
  };
  /** hping3 from a pod, with the capabilities a pod has. */
  const fromPod = (pod: TestPod, args: string[]) => cluster!.exec(pod.ns, withPrivileges([toolPath('hping3')!, ...args], { capabilities: POD_CAPABILITIES })).catch(() => undefined);

  before(async () => {
    if (skip()) return;
    const cp = state.cp!;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, 'kube-portsentry-agent']);
    cluster = await TestCluster.create(3);
    for (const [i, node] of cluster.nodes.entries()) {
      await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name }, spec: { podCIDR: `10.244.${i + 1}.0/24` } });
      await cp.kubectl(['patch', 'node', node.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: node.v4 }] } })]);
    }
    const [n1, n2] = cluster.nodes as [TestNode, TestNode];
    pods = [await cluster.addPod(n1, '10.244.1.0/24'), await cluster.addPod(n2, '10.244.2.0/24')];
    // A Kubernetes node forwards (kubelet requires it); loose reverse-path filtering, the
    // Debian and Ubuntu default (systemd's 50-default.conf), on the node's interfaces.
    for (const n of [n1, n2]) {
      await cluster.exec(n.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await cluster.exec(n.ns, ['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=2']);
    }
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'forged' },
        spec: {
          tcp: { mode: 'stealth', ports: [1] },
          udp: { mode: 'bind', ports: [UDP_TRIPWIRE] },
          trigger: { count: 0 },
          // Two nodes' reports are enough here: the evidence each node counts is what is tested.
          response: { tcp: 'block', udp: 'block', scope: 'cluster', firewall: 'nftables', clusterEvidence: 'corroborated' },
        },
      }),
    });
    op = await startTestOperator(cp, { leaseDurationMs: 15_000 });
    await startReportingAgents(cluster, cp, op.url, (node) => (node === n2 ? ['--no-anti-spoofing'] : []));
    for (const node of cluster.nodes) await node.agent!.waitFor((l) => l.msg === 'effective policy in force', 15_000);
  });

  test('A0 (control): one forged UDP datagram to one node blocks there, and nowhere else', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const n2 = cluster!.nodes[1]!;
    const source = '198.18.0.76';
    await udpFromScanner(source, n2.v4);
    await eventually(`${source} blocked on node 2`, async () => (await cluster!.nodeSet(n2)).has(source));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await bhFor(source), false, 'one node\'s unverified detection became a BlockedHost');
  });

  test('A: one forged UDP datagram to the IPv4 broadcast address is no probe of any node', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const source = '198.18.0.77';
    const before = await Promise.all(cluster!.nodes.map(notLocal));
    await udpFromScanner(source, '198.18.0.255');
    await new Promise((r) => setTimeout(r, 2000)); // reports, and any BlockedHost, would be through by now
    assert.equal(await blockedAnywhere(source), null, 'blocked on a node');
    assert.equal(await bhFor(source), false, 'a BlockedHost from one forged datagram');
    for (const [i, n] of cluster!.nodes.entries()) await eventually(`${n.name} counts it as not addressed to it`, async () => (await notLocal(n)) > before[i]!);
  });

  test('A6: one forged UDP datagram to ff02::1 is no probe of any node', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const source = '2001:db8::77';
    const before = await Promise.all(cluster!.nodes.map(notLocal));
    await udpFromScanner(source, 'ff02::1%eth0', true);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await blockedAnywhere(source), null, 'blocked on a node');
    assert.equal(await bhFor(source), false, 'a BlockedHost from one forged datagram to ff02::1');
    for (const [i, n] of cluster!.nodes.entries()) await eventually(`${n.name} counts it as not addressed to it`, async () => (await notLocal(n)) > before[i]!);
  });

  test('B: a pod with NET_RAW behind node 1 forges SYNs to nodes 2 and 3: dropped on node 1, blocked nowhere', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2, n3] = cluster!.nodes as [TestNode, TestNode, TestNode];
    const outside = '198.18.0.78';
    const dropped = 'portsentry_spoofed_packets_dropped_total';
    const before = await metric(n1, dropped);
    for (const target of [n2, n3]) await fromPod(pods[0], ['-S', '-c', '1', '-a', outside, '-p', '1', target.v4]);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await blockedAnywhere(outside), null, 'blocked on a node');
    assert.equal(await bhFor(outside), false, 'a BlockedHost for the address the pod forged');
    await eventually('node 1 counts what its pod forged', async () => (await metric(n1, dropped)) >= before + 2);
    t.diagnostic(`dropped on node 1: ${(await metric(n1, dropped)) - before}`);
    // The control: the same SYNs from the nodes' own network are corroborated by the two nodes.
    const lan = '198.18.0.80';
    for (const target of [n2, n3]) await cluster!.exec(cluster!.scanner, [toolPath('hping3')!, '-S', '-c', '1', '-a', lan, '-p', '1', target.v4]).catch(() => undefined);
    await eventually('the control BlockedHost, corroborated by nodes 2 and 3', () => bhFor(lan));
  });

  test('C: a pod forges one UDP datagram to its own node\'s bind-mode tripwire: counted as spoofed (or dropped first), never blocked', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster!.nodes as [TestNode, TestNode];
    // Node 2 runs without the anti-spoofing rule: the agent's own check of the datagram's interface.
    const outside = '198.18.0.79';
    const spoofed = 'portsentry_probes_spoofed_total{protocol="udp"}';
    const before = await metric(n2, spoofed);
    const dropped = await metric(n1, 'portsentry_spoofed_packets_dropped_total');
    await fromPod(pods[1], ['--udp', '-c', '1', '-a', outside, '-p', String(UDP_TRIPWIRE), n2.v4]);
    // Node 1 with its rule: dropped before any socket sees it.
    await fromPod(pods[0], ['--udp', '-c', '1', '-a', outside, '-p', String(UDP_TRIPWIRE), n1.v4]);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await blockedAnywhere(outside), null, 'blocked on a node');
    assert.equal(await bhFor(outside), false);
    await eventually('node 2 counts it as spoofed', async () => (await metric(n2, spoofed)) > before);
    await eventually('node 1 drops it', async () => (await metric(n1, 'portsentry_spoofed_packets_dropped_total')) > dropped);
  });
});
