// What the end-to-end suite does to the real cluster, as an admin and as an outsider would:
// kubectl and helm (cluster.ts), scans and connections from the scanner's namespace, the
// nodes' nftables sets, container processes found through each node's containerd, and a
// Prometheus on the monitoring host.
import { readFile } from 'node:fs/promises';
import { runProgram } from '../../src/respond/run-program.js';
import { connectFrom, type ConnectResult } from '../../support/netns.js';
export { eventually } from '../../support/cluster.js';
import type { Cluster } from './cluster.js';
import { NODES, SCANNER, type NodeSpec } from './layout.js';

export const RELEASE = 'kps';
export const NAMESPACE = 'kube-portsentry';
export const AGENT = `${RELEASE}-kube-portsentry-agent`;
export const OPERATOR = `${RELEASE}-kube-portsentry-operator`;

export interface Pod {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
  status: { podIP?: string; phase?: string; conditions?: { type: string; status: string }[] };
}

export const nodeByName = (name: string | undefined): NodeSpec => {
  const node = NODES.find((n) => n.name === name);
  if (!node) throw new Error(`no node ${name}`);
  return node;
};

export async function pods(cluster: Cluster, namespace: string, selector: string): Promise<Pod[]> {
  return (await cluster.json<{ items: Pod[] }>(['get', 'pods', '-n', namespace, '-l', selector])).items.filter(
    (p) => p.status.phase === 'Running' && !('deletionTimestamp' in p.metadata),
  );
}

export const agentPods = (cluster: Cluster) => pods(cluster, NAMESPACE, 'app.kubernetes.io/component=agent');
export const operatorPods = (cluster: Cluster) => pods(cluster, NAMESPACE, 'app.kubernetes.io/component=operator');

/** The host PID of a pod's container's main process, from its node's containerd. */
export async function containerPid(cluster: Cluster, pod: Pod, container: string): Promise<number> {
  const node = nodeByName(pod.spec.nodeName);
  const { stdout: ids } = await cluster.ctr(node, ['containers', 'list', '--quiet', `labels."io.kubernetes.pod.uid"==${pod.metadata.uid}`]);
  for (const id of ids.split('\n').filter(Boolean)) {
    const info = JSON.parse((await cluster.ctr(node, ['containers', 'info', id])).stdout) as { Labels: Record<string, string> };
    if (info.Labels['io.kubernetes.container.name'] !== container) continue;
    const { stdout: tasks } = await cluster.ctr(node, ['tasks', 'list']);
    const line = tasks.split('\n').find((l) => l.startsWith(id));
    const pid = Number(line?.split(/\s+/)[1]);
    if (pid > 0) return pid;
  }
  throw new Error(`no running container ${container} of pod ${pod.metadata.name}`);
}

export interface ProcStatus {
  uid: number;
  capEff: bigint;
  capBnd: bigint;
  noNewPrivs: boolean;
  seccomp: number;
}

export async function procStatus(pid: number): Promise<ProcStatus> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return m[1]!.trim();
  };
  return {
    uid: Number(field('Uid').split(/\s+/)[1]),
    capEff: BigInt(`0x${field('CapEff')}`),
    capBnd: BigInt(`0x${field('CapBnd')}`),
    noNewPrivs: field('NoNewPrivs') === '1',
    seccomp: Number(field('Seccomp')),
  };
}

/** Every address in the node's kube-portsentry nftables sets (whatever the table is named). */
export async function nodeBlocked(node: NodeSpec): Promise<Set<string>> {
  const { stdout } = await runProgram(['ip', 'netns', 'exec', node.ns, 'nft', '-j', 'list', 'ruleset'], { maxOutputBytes: 256 << 20, timeoutMs: 60_000 });
  const found = new Set<string>();
  type Elem = string | { elem?: { val: unknown }; prefix?: { addr: string; len: number } };
  const text = (e: unknown): string | undefined => {
    if (typeof e === 'string') return e;
    const o = e as Exclude<Elem, string>;
    if (o.elem) return text(o.elem.val);
    if (o.prefix) return `${o.prefix.addr}/${o.prefix.len}`;
    return undefined;
  };
  for (const item of (JSON.parse(stdout) as { nftables: Record<string, { table?: string; elem?: unknown[] }>[] }).nftables) {
    const set = item.set;
    if (!set || !set.table?.startsWith('kube_portsentry')) continue;
    for (const e of set.elem ?? []) {
      const t = text(e);
      if (t) found.add(t);
    }
  }
  return found;
}

export const reach = (host: string, port: number, timeoutMs = 1500): Promise<ConnectResult> =>
  connectFrom(SCANNER.ns, { host, port, timeoutMs });

export async function nmapConnect(target: string, ports: number[]): Promise<string> {
  const { stdout } = await runProgram(['ip', 'netns', 'exec', SCANNER.ns, 'nmap', '-sT', '-Pn', '-n', '--max-retries', '2', '-p', ports.join(','), target], {
    timeoutMs: 120_000,
  });
  return stdout;
}

/** One SYN from the scanner's namespace with a forged source address. */
export async function forgedSyn(source: string, target: string, port: number): Promise<void> {
  await runProgram(['ip', 'netns', 'exec', SCANNER.ns, 'hping3', '-q', '-S', '-c', '1', '-a', source, '-p', String(port), target], { timeoutMs: 30_000 }).catch(
    (err: Error) => {
      // hping3 exits 1 when nothing answered, which is what a forged probe expects.
      if (!/failed \(1\)/.test(err.message)) throw err;
    },
  );
}

/** Top-level keys that occur more than once in one JSON object text (JSON.parse keeps the last silently). */
export function duplicateKeys(json: string): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const text = json.slice(i + 1, j);
      if (depth === 1 && /^\s*:/.test(json.slice(j + 1))) (seen.has(text) ? dup : seen).add(text);
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return [...dup];
}
