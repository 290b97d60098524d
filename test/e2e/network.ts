// The cluster's network: a bridge in the fabric namespace joins the control plane, the
// nodes, the scanner and the monitoring host, each in a network namespace of its own with
// one veth. The fabric also routes: it is every member's default gateway, and it learns
// each node's pod CIDR (as a cloud's route controller would), so the scanner and the
// monitoring host reach pods on any node.
import { runProgram } from '../../src/respond/run-program.js';
import { CONTROL_PLANE, FABRIC_NS, GATEWAY, MONITOR, NODES, PREFIX, PREFIX_LEN, SCANNER } from './layout.js';

const ip = (...args: string[]) => runProgram(['ip', ...args], { timeoutMs: 30_000 });
export const inNs = (ns: string, argv: string[], timeoutMs = 60_000) =>
  runProgram(['ip', 'netns', 'exec', ns, ...argv], { timeoutMs });

const MEMBERS = [CONTROL_PLANE, SCANNER, MONITOR, ...NODES];

export async function createNetwork(): Promise<void> {
  await ip('netns', 'add', FABRIC_NS);
  await ip('-n', FABRIC_NS, 'link', 'set', 'lo', 'up');
  await ip('-n', FABRIC_NS, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', FABRIC_NS, 'addr', 'add', `${GATEWAY}/${PREFIX_LEN}`, 'dev', 'br0');
  await ip('-n', FABRIC_NS, 'link', 'set', 'br0', 'up');
  await inNs(FABRIC_NS, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  for (const m of MEMBERS) {
    await ip('netns', 'add', m.ns);
    await ip('-n', m.ns, 'link', 'set', 'lo', 'up');
    await ip('link', 'add', m.veth, 'netns', FABRIC_NS, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', m.ns);
    await ip('-n', FABRIC_NS, 'link', 'set', m.veth, 'master', 'br0', 'up');
    await ip('-n', m.ns, 'addr', 'add', `${m.ip}/${PREFIX_LEN}`, 'dev', 'eth0');
    await ip('-n', m.ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', m.ns, 'route', 'add', 'default', 'via', GATEWAY);
  }
}

/** Routes a node's pod CIDR to it: on the fabric's router and directly from the other nodes. */
export async function routePodCidr(node: { ip: string; name: string }, cidr: string): Promise<void> {
  await ip('-n', FABRIC_NS, 'route', 'replace', cidr, 'via', node.ip);
  for (const other of NODES) if (other.name !== node.name) await ip('-n', other.ns, 'route', 'replace', cidr, 'via', node.ip);
}

/** Deletes every namespace of the cluster (with them their interfaces, routes and nftables tables). */
export async function destroyNetwork(): Promise<void> {
  const { stdout } = await ip('netns', 'list');
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(`${PREFIX}-`)) await ip('netns', 'delete', name);
  }
}
