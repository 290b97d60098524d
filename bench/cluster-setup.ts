// The cluster the cluster benchmark runs on, built from the test helpers: a real
// kube-apiserver and etcd, the operator as a process on loopback, and an agent in each of
// three node namespaces on a bridge (support/cluster.ts). Adds what the benchmark
// needs on top: probe sources routed to the scanner, nft monitor watchers that timestamp
// set additions on each node, a SYN sender, a keep-alive API client for bulk writes, and
// readings of metrics and RSS.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TestCluster, type TestNode } from '../support/cluster.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { hasTool } from '../support/prereq.js';
import type { SentryProcess } from '../support/sentry-process.js';
import { runProgram } from '../src/respond/run-program.js';
import { freePort } from '../support/free-port.js';

export const NS = 'kube-portsentry';
/** The API server's advertised address: protected, never a probe source. */
const API_ADVERTISED = '198.18.0.100';
/** Probe sources: the scanner owns the whole /16 (a local route), the nodes route it to the scanner. */
export const SOURCE_RANGE = '198.19.0.0/16';
export const probeSource = (i: number): string => `198.19.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`;
/** BlockedHosts made in bulk: 100.64.0.0 and up (shared address space, 1,048,576 of them), away from the nodes and sources. */
export const bulkAddress = (i: number): string => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
export const BULK_LIMIT = 1 << 20;
export const AGENT_METRICS = 9109;
export const TRIPWIRE_PORT = 1;

const WATCH = fileURLToPath(new URL('./cluster-watch.js', import.meta.url));
const PROBE = fileURLToPath(new URL('./cluster-probe.js', import.meta.url));

export const POLICY = `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: bench
spec:
  tcp:
    mode: stealth
    ports: [${TRIPWIRE_PORT}]
  udp:
    mode: "off"
  trigger:
    count: 0
  response:
    tcp: block
    scope: cluster
    # Measures propagation: one node's stealth detection counts cluster-wide.
    clusterEvidence: singleNode
    duration: 1h
    maxBlocksPerMinute: 100000
`;

export function missingPrerequisites(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push('root');
  for (const tool of ['nft', 'openssl', 'go', 'ip']) if (!hasTool(tool)) out.push(tool);
  return out;
}

/** Set additions on one node, as its watcher saw them. */
export class SetWatcher {
  /** Address -> hrtime (ns) of its latest addition. */
  readonly added = new Map<string, bigint>();
  private waiters: { address: string; resolve: (t: bigint) => void }[] = [];
  private counters: { pred: (a: string, t: bigint) => boolean; n: number; want: number; resolve: (t: bigint) => void }[] = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [ns, , address] = line.split(' ');
      if (!ns || !address) return;
      const t = BigInt(ns);
      this.added.set(address, t);
      this.waiters = this.waiters.filter((w) => (w.address === address ? (w.resolve(t), false) : true));
      for (const c of this.counters) if (c.pred(address, t) && ++c.n === c.want) c.resolve(t);
      this.counters = this.counters.filter((c) => c.n < c.want);
    });
  }

  /** The time `address` is (or was, after `since`) added; null when not within `timeoutMs`. */
  waitFor(address: string, since: bigint, timeoutMs: number): Promise<bigint | null> {
    const seen = this.added.get(address);
    if (seen !== undefined && seen >= since) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
      const waiter = {
        address,
        resolve: (t: bigint) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves with the time of the `want`-th addition (from now on) matching `pred`. */
  count(want: number, pred: (address: string, t: bigint) => boolean): Promise<bigint> {
    return new Promise((resolve) => this.counters.push({ pred, n: 0, want, resolve }));
  }
}

export class BenchCluster {
  readonly watchers = new Map<string, SetWatcher>();
  private prober: ChildProcess | undefined;
  private probeWaiters = new Map<string, (t: bigint) => void>();
  operator: SentryProcess | undefined;
  operatorMetricsPort = 0;
  private operatorArgs: string[] = [];
  agentArgs: string[] = [];
  private operatorRuns = 0;

  private constructor(
    readonly cp: ControlPlane,
    readonly cluster: TestCluster,
  ) {}

  get nodes(): TestNode[] {
    return this.cluster.nodes;
  }

  static async create(): Promise<BenchCluster> {
    const cp = await startControlPlane({ advertiseAddress: API_ADVERTISED });
    let cluster: TestCluster | undefined;
    try {
      cluster = await TestCluster.create(3);
      const b = new BenchCluster(cp, cluster);
      await b.prepare();
      return b;
    } catch (err) {
      await cluster?.destroy();
      await cp.stop();
      throw err;
    }
  }

  private async prepare(): Promise<void> {
    const { cp, cluster } = this;
    await cp.kubectl(['apply', '-f', fileURLToPath(new URL('../../crds/', import.meta.url))]);
    await cp.kubectl(['wait', '--for', 'condition=established', 'crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io']);
    await cp.kubectl(['create', 'namespace', NS]);
    await cp.kubectl(['create', 'serviceaccount', '-n', NS, 'kube-portsentry-agent']);
    const token = (await cp.kubectl(['create', 'token', '-n', NS, 'kube-portsentry-agent', '--audience', 'kube-portsentry', '--duration', '2h'])).stdout.trim();
    const tokenFile = await cluster.writeFile('token', token);
    for (const node of cluster.nodes) {
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.name } }) });
      await cp.kubectl([
        'patch', 'node', node.name, '--subresource=status', '--type=merge',
        '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: node.v4 }, { type: 'InternalIP', address: node.v6 }] } }),
      ]);
      // Replies to probe sources go back to the scanner, inside the bridge.
      await cluster.exec(node.ns, ['ip', 'route', 'add', SOURCE_RANGE, 'via', '198.18.0.1', 'dev', 'eth0']);
    }
    await cluster.exec(cluster.scanner, ['ip', 'route', 'add', 'local', SOURCE_RANGE, 'dev', 'lo']);
    const key = `${cluster.dir}/tls.key`;
    const cert = `${cluster.dir}/tls.crt`;
    await runProgram([
      'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=kube-portsentry-operator', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    const reports = await freePort();
    this.operatorMetricsPort = await freePort();
    this.operatorArgs = [
      '--namespace', NS, '--kubeconfig', cp.kubeconfig, '--listen-address', `127.0.0.1:${reports}`,
      '--tls-cert', cert, '--tls-key', key, '--metrics-address', `127.0.0.1:${this.operatorMetricsPort}`, '--lease-duration', '3s',
      // One token (bound to no pod) serves every agent of the bench.
      '--allow-unbound-tokens',
      // Debug lines carry the stage timings (cluster-stages.ts).
      '--log-level', 'debug',
    ];
    await cluster.forwardLoopback([Number(new URL(cp.url).port), reports]);
    this.agentArgs = [
      '--namespace', NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile, '--operator-ca', cert,
      '--operator-url', `https://127.0.0.1:${reports}`, '--firewall', 'nftables', '--metrics-address', `127.0.0.1:${AGENT_METRICS}`,
      '--log-level', 'debug',
    ];
  }

  /** Starts an operator (a fresh identity each time) and returns its process. */
  startOperator(): SentryProcess {
    this.operator = this.cluster.startOperator([...this.operatorArgs, '--identity', `bench-${this.operatorRuns++}`]);
    return this.operator;
  }

  async stopOperator(): Promise<void> {
    await this.operator?.stop();
    this.operator = undefined;
  }

  startAgent(node: TestNode, extra: string[] = []): Promise<SentryProcess> {
    return this.cluster.startAgent(node, [...this.agentArgs, ...extra]);
  }

  /** Starts the set watcher of a node (its agent must have made the table). */
  async watch(node: TestNode): Promise<SetWatcher> {
    const child = this.cluster.spawnIn(node.ns, [process.execPath, WATCH]);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      const onLine = (d: Buffer) => {
        if (d.toString().includes('ready')) {
          child.stdout!.off('data', onLine);
          resolve();
        }
      };
      child.stdout!.on('data', onLine);
      child.once('exit', (code) => reject(new Error(`set watcher on ${node.name} exited (${code}): ${err.trim()}`)));
    });
    const w = new SetWatcher(child);
    this.watchers.set(node.name, w);
    return w;
  }

  /** Sends one SYN from `source` to `target`; resolves with the hrtime it was sent at. */
  probe(source: string, target: string, port = TRIPWIRE_PORT): Promise<bigint> {
    if (!this.prober) {
      const p = spawn('ip', ['netns', 'exec', this.cluster.scanner, process.execPath, PROBE], { stdio: ['pipe', 'pipe', 'inherit'] });
      createInterface({ input: p.stdout! }).on('line', (line) => {
        const [, sent, ns] = line.split(' ');
        if (sent && ns) this.probeWaiters.get(sent)?.(BigInt(ns));
      });
      this.prober = p;
    }
    const prober = this.prober;
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`probe sender exited (${code})`));
      prober.once('exit', onExit);
      this.probeWaiters.set(source, (t) => {
        this.probeWaiters.delete(source);
        prober.off('exit', onExit);
        resolve(t);
      });
      prober.stdin!.write(`${source} ${target} ${port}\n`);
    });
  }

  /** A JSON request as the admin (the control plane's keep-alive pool carries bulk writes). */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    return this.cp.api(method, path, body);
  }

  async operatorMetrics(): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${this.operatorMetricsPort}/metrics`);
    return r.text();
  }

  async destroy(): Promise<void> {
    this.prober?.kill('SIGKILL');
    await this.cluster.destroy();
    await this.cp.stop();
  }
}

/** Resident set size of a process, in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The value of one series in a Prometheus text exposition (labels as written), or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

/** Sum of a counter's series by label set, e.g. {verb,resource} -> count (code summed over). */
export function counterSeries(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    out.set(line.slice(name.length, close + 1), Number(line.slice(close + 2)));
  }
  return out;
}
