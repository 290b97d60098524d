// The agent's anti-spoofing rule (NftablesFirewall.antiSpoofing) on a node built in network
// namespaces: two nodes on a LAN, each with a CNI-like bridge and pods, node 1 forwarding and
// masquerading its pods' traffic to the outside. With the rule on node 1:
//  - what a pod forges with a source that routes out by the uplink (a LAN host's address,
//    the gateway's, an address behind the default route) is dropped on node 1 and counted:
//    node 2 never sees it (before the rule, it did: the control);
//  - legitimate traffic is untouched: pod to pod on the node, pod to a pod on the other
//    node, pod to the outside (masqueraded after the rule saw the pod's source), the node's
//    own (host network) traffic, the outside to a pod, and traffic that comes in by a second
//    network of the node (a macvlan here) from an address its default route serves (asymmetric
//    routing, common on multi-homed hosts: only pod-side interfaces are judged).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { NftablesFirewall } from '../../src/respond/firewall/nftables.js';
import { runProgram } from '../../src/respond/run-program.js';
import { connectFrom, deleteNamespace } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const TOOLS = ['ip', 'nft', 'hping3'];
const PORT = 8080;
const OUTSIDE = '198.18.0.50';
const NODE1 = '198.18.0.11';
const NODE2 = '198.18.0.12';
const ROUTER = '198.18.0.254';
const POD_A = '10.244.1.2';
const POD_B = '10.244.1.3';
const POD_C = '10.244.2.2';
const NODE1_SECOND = '192.0.2.1';
/** A host on node 1's second network whose address node 1 reaches by its default route. */
const ASYMMETRIC = '203.0.113.77';

describe('anti-spoofing on a node: forged pod traffic dropped, legitimate traffic untouched', { concurrency: false }, () => {
  const id = `kas${process.pid % 100000}`;
  const ns = { lan: `${id}-lan`, n1: `${id}-n1`, n2: `${id}-n2`, out: `${id}-out`, pa: `${id}-pa`, pb: `${id}-pb`, pc: `${id}-pc`, st: `${id}-st` };
  const servers: ChildProcess[] = [];
  let dir = '';
  let firewall: NftablesFirewall;
  const ip = (...args: string[]) => runProgram(['ip', ...args]);
  const exec = (where: string, argv: string[]) => runProgram(['ip', 'netns', 'exec', where, ...argv]);

  before(async () => {
    if (process.getuid?.() !== 0) return;
    for (const n of Object.values(ns)) await ip('netns', 'add', n);
    await ip('-n', ns.lan, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', ns.lan, 'link', 'set', 'br0', 'up');
    // The LAN: two nodes and an outside host that knows nothing of the pod network.
    for (const [i, [where, address]] of ([[ns.n1, NODE1], [ns.n2, NODE2], [ns.out, OUTSIDE]] as const).entries()) {
      await ip('-n', ns.lan, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', where);
      await ip('-n', ns.lan, 'link', 'set', `p${i}`, 'master', 'br0', 'up');
      await ip('-n', where, 'link', 'set', 'lo', 'up');
      await ip('-n', where, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', where, 'link', 'set', 'eth0', 'up');
    }
    // Pods: a bridge per node, as the bridge plugin (flannel, kindnet's bridge mode) makes.
    const pods = [[ns.n1, ns.pa, POD_A, '10.244.1.1', 'va'], [ns.n1, ns.pb, POD_B, '10.244.1.1', 'vb'], [ns.n2, ns.pc, POD_C, '10.244.2.1', 'vc']] as const;
    for (const [node, pod, address, gateway, veth] of pods) {
      if (!(await ip('-n', node, 'link', 'show')).stdout.includes('cni0:')) {
        await ip('-n', node, 'link', 'add', 'cni0', 'type', 'bridge');
        await ip('-n', node, 'addr', 'add', `${gateway}/24`, 'dev', 'cni0');
        await ip('-n', node, 'link', 'set', 'cni0', 'up');
      }
      await ip('-n', node, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod);
      await ip('-n', node, 'link', 'set', veth, 'master', 'cni0', 'up');
      await ip('-n', pod, 'link', 'set', 'lo', 'up');
      await ip('-n', pod, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', pod, 'link', 'set', 'eth0', 'up');
      await ip('-n', pod, 'route', 'add', 'default', 'via', gateway);
    }
    // Nodes route each other's pod CIDR, forward, filter reverse paths loosely (Debian's
    // default), have a default route (to a router nobody answers for), and node 1
    // masquerades what its pods send outside the pod network.
    await ip('-n', ns.n1, 'route', 'add', '10.244.2.0/24', 'via', NODE2);
    await ip('-n', ns.n2, 'route', 'add', '10.244.1.0/24', 'via', NODE1);
    for (const node of [ns.n1, ns.n2]) {
      await ip('-n', node, 'route', 'add', 'default', 'via', ROUTER);
      await exec(node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      for (const key of ['all', 'default']) await exec(node, ['sysctl', '-qw', `net.ipv4.conf.${key}.rp_filter=2`]);
    }
    // Node 1's second network: a macvlan on a link of its own (as a second NIC or a VLAN is:
    // neither a veth nor a bridge; this kernel has no 8021q to make a VLAN).
    await ip('-n', ns.n1, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.st);
    await ip('-n', ns.n1, 'link', 'set', 'eth1', 'up');
    await ip('-n', ns.n1, 'link', 'add', 'link', 'eth1', 'name', 'sec0', 'type', 'macvlan', 'mode', 'bridge');
    await ip('-n', ns.n1, 'addr', 'add', `${NODE1_SECOND}/24`, 'dev', 'sec0');
    await ip('-n', ns.n1, 'link', 'set', 'sec0', 'up');
    await ip('-n', ns.st, 'link', 'set', 'lo', 'up');
    await ip('-n', ns.st, 'addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
    await ip('-n', ns.st, 'addr', 'add', `${ASYMMETRIC}/32`, 'dev', 'eth0');
    await ip('-n', ns.st, 'link', 'set', 'eth0', 'up');
    await exec(ns.n1, ['sysctl', '-qw', 'net.ipv4.conf.sec0.rp_filter=2']);
    await exec(ns.n1, ['nft', `add table inet seen; add chain inet seen in { type filter hook input priority 0; }; add rule inet seen in ip saddr ${ASYMMETRIC} tcp dport 9 counter`]);
    await exec(ns.n1, ['nft', 'add table ip podnat; add chain ip podnat post { type nat hook postrouting priority srcnat; }; add rule ip podnat post ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 oifname eth0 masquerade']);
    // Node 2 counts what arrives from the addresses a pod will forge.
    await exec(ns.n2, ['nft', `add table inet seen; add chain inet seen in { type filter hook prerouting priority -400; }; add rule inet seen in ip saddr { ${OUTSIDE}, ${ROUTER}, 203.0.113.9 } tcp dport 9 counter`]);
    for (const where of [ns.pb, ns.pc, ns.out, ns.n2, ns.pa]) {
      const child = runServer(where);
      servers.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`server in ${where} exited (${code})`)));
      });
    }
    // The agent's firewall, run inside node 1 through a wrapper around nft.
    dir = await mkdtemp(join(tmpdir(), 'kps-antispoof-'));
    const nft = join(dir, 'nft');
    await writeFile(nft, `#!/bin/sh\nexec ip netns exec ${ns.n1} nft "$@"\n`);
    await chmod(nft, 0o755);
    firewall = new NftablesFirewall(nft, 'kube_portsentry_agent_test');
    await firewall.setup();
  });

  after(async () => {
    for (const s of servers) s.kill();
    for (const n of Object.values(ns)) await deleteNamespace(n);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const runServer = (where: string): ChildProcess =>
    spawnIn(where, [process.execPath, '-e', `require('node:net').createServer((s) => { s.on('error', () => {}); s.end('hi\\n'); }).listen(${PORT}, () => console.log('up'));`]);
  const seenOnNode2 = async () => Number(/counter packets (\d+)/.exec((await exec(ns.n2, ['nft', 'list', 'table', 'inet', 'seen'])).stdout)![1]);
  const forge = (source: string) => exec(ns.pa, ['hping3', '-S', '-c', '1', '-a', source, '-p', '9', NODE2]).catch(() => undefined);
  const forgeAll = async () => {
    for (const source of [OUTSIDE, ROUTER, '203.0.113.9']) await forge(source);
    await new Promise((r) => setTimeout(r, 300));
  };
  /** What node 1 lets in of a SYN from the asymmetric host on its second network. */
  const fromSecondNetwork = async () => {
    const seen = async () => Number(/counter packets (\d+)/.exec((await exec(ns.n1, ['nft', 'list', 'table', 'inet', 'seen'])).stdout)![1]);
    const before = await seen();
    await exec(ns.st, ['hping3', '-S', '-c', '1', '-a', ASYMMETRIC, '-p', '9', NODE1_SECOND]).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    return (await seen()) - before;
  };
  const legitimate = async (t: TestContext) => {
    const checks: [string, string, string][] = [
      ['pod to pod on the node', ns.pa, POD_B],
      ['pod to a pod on the other node', ns.pa, POD_C],
      ['pod to the outside, masqueraded', ns.pa, OUTSIDE],
      ['pod to the other node', ns.pa, NODE2],
      ['host network to the other node', ns.n1, NODE2],
      ['host network to a pod on the node', ns.n1, POD_A],
      ['host network to the outside', ns.n1, OUTSIDE],
      ['a pod on the other node to a pod here', ns.pc, POD_A],
    ];
    for (const [what, from, to] of checks) assert.equal(await connectFrom(from, { host: to, port: PORT, timeoutMs: 2000 }), 'open', what);
    t.diagnostic(`${checks.length} legitimate connections open`);
    assert.equal(await fromSecondNetwork(), 1, 'a SYN by the second network from an address behind the default route');
  };

  test('without the rule: what a pod forges reaches the other node (the control), and legitimate traffic flows', async (t) => {
    if (!prerequisites(t, { root: true, tools: TOOLS })) return;
    await legitimate(t);
    const before = await seenOnNode2();
    await forgeAll();
    assert.equal((await seenOnNode2()) - before, 3, 'the forged SYNs crossed node 1');
  });

  test('with the rule: the forged packets are dropped on node 1 and counted; legitimate traffic still flows', async (t) => {
    if (!prerequisites(t, { root: true, tools: TOOLS })) return;
    await firewall.antiSpoofing.enableAntiSpoofing();
    await firewall.antiSpoofing.setUplinks(['eth0']);
    // Like every entry the agent writes, the uplinks expire by themselves (then the rule
    // matches nothing), so a node left with the table after an uninstall is not filtered for good.
    const listed = JSON.parse((await exec(ns.n1, ['nft', '-j', 'list', 'set', 'inet', 'kube_portsentry_agent_test', 'uplinks'])).stdout) as { nftables: { set?: { elem?: { elem?: { timeout?: number } }[] } }[] };
    const elems = listed.nftables.flatMap((o) => o.set?.elem ?? []);
    assert.equal(elems.length, 1);
    for (const e of elems) assert.ok((e.elem?.timeout ?? 0) > 0 && e.elem!.timeout! <= 86_400, `uplink without a timeout of at most 24 h: ${JSON.stringify(e)}`);
    const before = await seenOnNode2();
    await forgeAll();
    assert.equal((await seenOnNode2()) - before, 0, 'a forged SYN crossed node 1');
    assert.equal(await firewall.antiSpoofing.spoofedDropped(), 3);
    await legitimate(t);
    assert.equal(await firewall.antiSpoofing.spoofedDropped(), 3, 'legitimate traffic was dropped');
    await firewall.teardown();
  });
});

function spawnIn(where: string, argv: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', where, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
}
