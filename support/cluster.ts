// A test cluster's network: a scanner and N nodes, each in a network namespace of its own,
// joined by a bridge in a "lan" namespace (198.18.0.0/24, 2001:db8::/64). The API server
// and the operators run on the root namespace's loopback; each node namespace reaches them
// on its own loopback through a forwarder over unix sockets. No traffic leaves loopback or
// these namespaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram } from '../src/respond/run-program.js';
import type { ControlPlane } from './control-plane.js';
import { connectFrom, deleteNamespace, type ConnectResult } from './netns.js';
import { withPrivileges, type Privileges } from './privilege.js';
import { CLI, SentryProcess } from './sentry-process.js';
import { DEFAULT_INSTANCE, firewallNames } from '../src/respond/firewall/owner.js';

/** The agents' nftables table: they run with the default instance. */
export const AGENT_TABLE = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE }).table;

const FORWARDER = fileURLToPath(new URL('./loopback-forwarder.js', import.meta.url));

export interface TestNode {
  name: string;
  ns: string;
  v4: string;
  v6: string;
  agent?: SentryProcess;
}

let counter = 0;

export const SCANNER = '198.18.0.1';
/** Extra scanner addresses, one per scenario, so each starts from a clean slate. */
export const scannerAddress = (i: number): string => `198.18.0.${i + 1}`;

/** A pod-like namespace on a node: behind the node's bridge, as a CNI's bridge plugin puts pods. */
export interface TestPod {
  ns: string;
  node: TestNode;
  address: string;
  /** The node's address on the bridge (the pod's gateway). */
  gateway: string;
}

export class TestCluster {
  readonly nodes: TestNode[] = [];
  readonly pods: TestPod[] = [];
  readonly operators: SentryProcess[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly servers: Server[] = [];
  private constructor(
    readonly id: string,
    readonly lan: string,
    readonly scanner: string,
    readonly dir: string,
  ) {}

  static async create(nodeCount: number): Promise<TestCluster> {
    const id = `kpc${process.pid % 10000}x${counter++}`;
    const dir = await mkdtemp(join(tmpdir(), 'kps-cluster-'));
    const c = new TestCluster(id, `${id}-lan`, `${id}-scan`, dir);
    const ip = (...args: string[]) => runProgram(['ip', ...args]);
    try {
      await ip('netns', 'add', c.lan);
      await ip('-n', c.lan, 'link', 'add', 'br0', 'type', 'bridge');
      await ip('-n', c.lan, 'link', 'set', 'br0', 'up');
      const join_ = async (ns: string, tag: string, v4: string[], v6: string[]) => {
        await ip('netns', 'add', ns);
        await ip('-n', c.lan, 'link', 'add', `${tag}l`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        await ip('-n', c.lan, 'link', 'set', `${tag}l`, 'master', 'br0', 'up');
        await ip('-n', ns, 'link', 'set', 'lo', 'up');
        for (const a of v4) await ip('-n', ns, 'addr', 'add', `${a}/24`, 'dev', 'eth0');
        for (const a of v6) await ip('-n', ns, '-6', 'addr', 'add', `${a}/64`, 'dev', 'eth0', 'nodad');
        await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      };
      await join_(c.scanner, 's', Array.from({ length: 9 }, (_, i) => scannerAddress(i)), ['2001:db8::1']);
      for (let i = 1; i <= nodeCount; i++) {
        const node: TestNode = { name: `node-${i}`, ns: `${id}-n${i}`, v4: `198.18.0.${10 + i}`, v6: `2001:db8::${10 + i}` };
        await join_(node.ns, `n${i}`, [node.v4], [node.v6]);
        c.nodes.push(node);
      }
      // Wait for carrier everywhere, so agents count their addresses as their own from the start.
      for (const ns of [c.scanner, ...c.nodes.map((n) => n.ns)])
        for (let i = 0; (await ip('-n', ns, 'link', 'show', 'dev', 'eth0')).stdout.includes('NO-CARRIER'); i++) {
          if (i > 100) throw new Error(`${ns} has no carrier`);
          await new Promise((r) => setTimeout(r, 20));
        }
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  /**
   * A pod-like namespace behind a bridge cni0 inside `node`'s namespace, on `cidr` (a /24:
   * the node takes .1, the pod .2), with its default route through the node. The node does
   * no reverse-path filtering of its own (rp_filter 0, as several CNIs require), so what a
   * pod forges reaches the node's sockets.
   */
  async addPod(node: TestNode, cidr: string): Promise<TestPod> {
    const base = cidr.replace(/\.0\/24$/, '');
    const pod: TestPod = { ns: `${this.id}-p${this.pods.length + 1}`, node, address: `${base}.2`, gateway: `${base}.1` };
    const ip = (...args: string[]) => runProgram(['ip', ...args]);
    await ip('netns', 'add', pod.ns);
    this.pods.push(pod);
    await ip('-n', node.ns, 'link', 'add', 'cni0', 'type', 'bridge');
    await ip('-n', node.ns, 'addr', 'add', `${pod.gateway}/24`, 'dev', 'cni0');
    await ip('-n', node.ns, 'link', 'set', 'cni0', 'up');
    await ip('-n', node.ns, 'link', 'add', 'vethpod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.ns);
    await ip('-n', node.ns, 'link', 'set', 'vethpod', 'master', 'cni0', 'up');
    await ip('-n', pod.ns, 'link', 'set', 'lo', 'up');
    await ip('-n', pod.ns, 'addr', 'add', `${pod.address}/24`, 'dev', 'eth0');
    await ip('-n', pod.ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', pod.ns, 'route', 'add', 'default', 'via', pod.gateway);
    for (const dev of ['all', 'default', 'eth0', 'cni0', 'vethpod'])
      await this.exec(node.ns, ['sysctl', '-qw', `net.ipv4.conf.${dev}.rp_filter=0`]);
    for (let i = 0; (await ip('-n', pod.ns, 'link', 'show', 'dev', 'eth0')).stdout.includes('NO-CARRIER'); i++) {
      if (i > 100) throw new Error(`${pod.ns} has no carrier`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return pod;
  }

  /** Makes 127.0.0.1:port of the root namespace reachable on 127.0.0.1:port in every node. */
  async forwardLoopback(ports: number[]): Promise<void> {
    const mappings: string[] = [];
    for (const port of ports) {
      const socket = join(this.dir, `${port}.sock`);
      const server = createServer((inbound) => {
        const outbound = connect(port, '127.0.0.1');
        inbound.pipe(outbound).pipe(inbound);
        inbound.on('error', () => outbound.destroy());
        outbound.on('error', () => inbound.destroy());
      });
      await new Promise<void>((r) => server.listen(socket, r));
      this.servers.push(server);
      mappings.push(`${port}=${socket}`);
    }
    for (const node of this.nodes) {
      const child = this.spawnIn(node.ns, [process.execPath, FORWARDER, ...mappings]);
      await new Promise<void>((resolve, reject) => {
        let seen = 0;
        child.stdout!.on('data', (d: Buffer) => {
          seen += d.toString().trim().split('\n').length;
          if (seen >= mappings.length) resolve();
        });
        child.once('exit', (code) => reject(new Error(`forwarder exited ${code}`)));
      });
    }
  }

  spawnIn(ns: string, argv: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  exec(ns: string, argv: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
    return runProgram(['ip', 'netns', 'exec', ns, ...argv], { timeoutMs });
  }

  /**
   * An operator process; with `privileges`, under capsh with only those (see privilege.ts).
   * `slot` replaces the operator at that index in `operators` (a restart) instead of adding one.
   */
  startOperator(args: string[], privileges?: Privileges, slot?: number): SentryProcess {
    const argv = [process.execPath, CLI, 'operator', ...args];
    const [program, ...rest] = privileges ? withPrivileges(argv, privileges) : argv;
    const child = spawn(program!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    const p = SentryProcess.attach(child);
    if (slot === undefined) this.operators.push(p);
    else this.operators[slot] = p;
    return p;
  }

  async startAgent(node: TestNode, args: string[], privileges?: Privileges): Promise<SentryProcess> {
    const argv = [process.execPath, CLI, 'agent', '--node-name', node.name, ...args];
    const p = SentryProcess.attach(this.spawnIn(node.ns, privileges ? withPrivileges(argv, privileges) : argv));
    node.agent = p;
    await p.waitFor((l) => l.msg === 'agent ready', 30_000);
    return p;
  }

  /** A TCP connection from the scanner namespace, from a given source address. */
  connect(from: string, host: string, port: number, timeoutMs = 1500): Promise<ConnectResult> {
    return connectFrom(this.scanner, { host, port, timeoutMs, localAddress: from });
  }

  /** A real service on every node: accepts and closes. */
  async services(port: number): Promise<void> {
    const script = `require('node:net').createServer((s) => { s.on('error', () => {}); s.end('hi\\n'); }).listen({ port: ${port}, host: '::', ipv6Only: false }, () => console.log('up'));`;
    for (const node of this.nodes) {
      const child = this.spawnIn(node.ns, [process.execPath, '-e', script]);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`service exited ${code}`)));
      });
    }
  }

  /** Addresses in a node's nftables blocked4/blocked6 sets, with their tags. */
  async nodeSet(node: TestNode): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    for (const set of ['blocked4', 'blocked6']) {
      const r = await this.exec(node.ns, ['nft', '-j', 'list', 'set', 'inet', AGENT_TABLE, set]).catch(() => null);
      if (!r) continue;
      const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
      for (const item of doc.nftables)
        for (const e of item.set?.elem ?? []) {
          const elem = (e as { elem?: { val: unknown; comment?: string } }).elem;
          const val = elem ? elem.val : e;
          if (typeof val === 'string') out.set(val, elem?.comment);
        }
    }
    return out;
  }

  /** Fetches an agent's metrics from inside its namespace. */
  async agentMetrics(node: TestNode, port: number): Promise<string> {
    const script = `fetch('http://127.0.0.1:${port}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e.message); process.exit(1); });`;
    return (await this.exec(node.ns, [process.execPath, '-e', script])).stdout;
  }

  async writeFile(name: string, text: string): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, text);
    return path;
  }

  async destroy(): Promise<void> {
    for (const child of this.children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const s of this.servers) s.close();
    for (const ns of [...this.pods.map((p) => p.ns), this.scanner, ...this.nodes.map((n) => n.ns), this.lan]) await deleteNamespace(ns);
    await rm(this.dir, { recursive: true, force: true });
  }
}

export async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * What agents need of the API before they start: the CRDs established, the namespace and
 * the agent ServiceAccount; returns a token of that account for the report audience.
 */
export async function prepareAgentApi(cp: ControlPlane, namespace: string): Promise<string> {
  await cp.kubectl(['apply', '-f', 'crds/']);
  await cp.kubectl(['wait', '--for', 'condition=established', 'crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io']);
  await cp.kubectl(['create', 'namespace', namespace]);
  await cp.kubectl(['create', 'serviceaccount', '-n', namespace, 'kube-portsentry-agent']);
  return (await cp.kubectl(['create', 'token', '-n', namespace, 'kube-portsentry-agent', '--audience', 'kube-portsentry', '--duration', '1h'])).stdout.trim();
}

/** A self-signed certificate for 127.0.0.1 (its own CA), as `dir/name.crt` and `dir/name.key`. */
export async function selfSignedCertificate(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await runProgram([
    'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { cert, key };
}
