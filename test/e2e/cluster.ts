// A real Kubernetes cluster on this machine, built from source and Debian's packages (see
// build.sh and images.sh): `up` brings it up and leaves it running, `down` removes every
// trace of it (processes, cgroups, namespaces with their interfaces and nftables tables,
// mounts, files, and the kernel settings the kubelet changes). Tests and the command line
// (cli.ts) attach to a running one through its state file.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram, type ProgramResult } from '../../src/respond/run-program.js';
import { eventually } from '../../support/cluster.js';
import { cgroupPids, createCgroup, destroyCgroup } from './cgroups.js';
import { ADMIN_KUBECONFIG, startControlPlane } from './control-plane.js';
import { CGROUP, CONTROL_PLANE, DNS_SERVICE_IP, NODES, PREFIX, STATE, containerdSocket, type NodeSpec } from './layout.js';
import { createNetwork, destroyNetwork, inNs, routePodCidr } from './network.js';
import { loadImages, startNode, writeCniConfig } from './node.js';
import { createPki } from './pki.js';

const repo = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const STATE_FILE = join(STATE, 'cluster.json');
/** Kernel settings the kubelet writes on start (they are not per namespace); restored by down(). */
const KUBELET_SYSCTLS = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];

interface State {
  bin: string;
  helm: string;
  images: string;
  sysctls: Record<string, string>;
}

type Run = (args: string[], options?: { input?: string; timeoutMs?: number }) => Promise<ProgramResult>;

export interface Cluster {
  readonly bin: string;
  readonly images: string;
  /** kubectl as the cluster admin, from the control plane's namespace. */
  kubectl: Run;
  /** helm as the cluster admin. */
  helm: Run;
  /** ctr against one node's containerd (namespace k8s.io). */
  ctr(node: NodeSpec, args: string[]): Promise<ProgramResult>;
  /** kubectl ... -o json, parsed. */
  json<T = unknown>(args: string[]): Promise<T>;
}

function attachState(state: State): Cluster {
  const kubectl: Run = (args, options = {}) =>
    runProgram(['ip', 'netns', 'exec', CONTROL_PLANE.ns, join(state.bin, 'kubectl'), '--kubeconfig', ADMIN_KUBECONFIG, ...args], {
      timeoutMs: 120_000,
      ...options,
    });
  return {
    bin: state.bin,
    images: state.images,
    kubectl,
    helm: (args, options = {}) =>
      runProgram(['ip', 'netns', 'exec', CONTROL_PLANE.ns, state.helm, '--kubeconfig', ADMIN_KUBECONFIG, ...args], { timeoutMs: 600_000, ...options }),
    ctr: (node, args) => runProgram(['ctr', '--address', containerdSocket(node), '--namespace', 'k8s.io', ...args], { timeoutMs: 60_000 }),
    json: async <T>(args: string[]) => JSON.parse((await kubectl([...args, '-o', 'json'], { timeoutMs: 60_000 })).stdout) as T,
  };
}

export async function attach(): Promise<Cluster> {
  if (!existsSync(STATE_FILE)) throw new Error(`no cluster is up (${STATE_FILE} is missing): run npm run e2e:up`);
  return attachState(JSON.parse(await readFile(STATE_FILE, 'utf8')) as State);
}

const script = async (path: string, ...args: string[]) =>
  (await runProgram(['bash', repo(path), ...args], { timeoutMs: 60 * 60_000 })).stdout.trim().split('\n').at(-1)!;

export async function up(log: (line: string) => void = (l) => process.stdout.write(`# e2e: ${l}\n`)): Promise<Cluster> {
  const t0 = Date.now();
  const step = (what: string) => log(`${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (existsSync(STATE) || cgroupPids(CGROUP).length > 0) await down(log);

  const bin = await script('test/e2e/build.sh');
  const helm = await script('test/helm/build.sh');
  step('binaries built');
  const images = await script('test/e2e/images.sh', bin);
  step('images built');

  await mkdir(STATE, { recursive: true });
  const sysctls: Record<string, string> = {};
  for (const s of KUBELET_SYSCTLS) sysctls[s] = (await readFile(`/proc/sys/${s}`, 'utf8')).trim();
  const state: State = { bin, helm, images, sysctls };
  await writeFile(STATE_FILE, JSON.stringify(state, null, 2));
  const cluster = attachState(state);

  try {
    await createCgroup(CGROUP);
    await createNetwork();
    const pki = await createPki(join(STATE, 'pki'));
    await startControlPlane(pki, bin);
    step('control plane ready');
    for (const node of NODES) await startNode(node, pki, bin);
    for (const node of NODES) await loadImages(node, images);
    step('nodes started, images loaded');

    // The controller manager allocates each node a pod CIDR; the node's network follows it.
    for (const node of NODES) {
      const cidr = await eventually(`a pod CIDR for ${node.name}`, async () => {
        const n = await cluster.json<{ spec: { podCIDR?: string } }>(['get', 'node', node.name]);
        return n.spec.podCIDR;
      }, 120_000);
      await writeCniConfig(node, cidr);
      await routePodCidr(node, cidr);
    }
    await cluster.kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=180s'], { timeoutMs: 200_000 });
    step('nodes ready');

    const coredns = (await readFile(join(images, 'images.txt'), 'utf8')).split('\n').find((l) => l.includes('/coredns'))!.split(' ')[0]!;
    const manifest = (await readFile(repo('test/e2e/manifests/coredns.yaml'), 'utf8'))
      .replaceAll('__COREDNS_IMAGE__', coredns)
      .replaceAll('__DNS_SERVICE_IP__', DNS_SERVICE_IP);
    await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
    await cluster.kubectl(['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=180s'], { timeoutMs: 200_000 });
    step('cluster DNS ready');

    // For people: the admin's kubectl and helm, run where the API server is reachable.
    for (const [tool, path] of [['kubectl', join(bin, 'kubectl')], ['helm', helm]] as const) {
      await writeFile(join(STATE, tool), `#!/bin/sh\nexec ip netns exec ${CONTROL_PLANE.ns} ${path} --kubeconfig ${ADMIN_KUBECONFIG} "$@"\n`);
      await chmod(join(STATE, tool), 0o755);
    }
  } catch (err) {
    log(`bring-up failed: ${(err as Error).message}`);
    throw err;
  }
  step('up');
  return cluster;
}

/** Removes the cluster and everything it made; safe to run when it is partly up or already gone. */
export async function down(log: (line: string) => void = (l) => process.stdout.write(`# e2e: ${l}\n`)): Promise<void> {
  let state: State | undefined;
  if (existsSync(STATE_FILE)) state = JSON.parse(await readFile(STATE_FILE, 'utf8')) as State;
  await destroyCgroup(CGROUP);
  await destroyNetwork();
  for (const [s, value] of Object.entries(state?.sysctls ?? {})) await writeFile(`/proc/sys/${s}`, value);
  await rm(STATE, { recursive: true, force: true });
  const left = await leftovers();
  if (left.length > 0) throw new Error(`teardown left behind: ${left.join('; ')}`);
  log('down');
}

/** What a cluster could leave behind on this machine; empty when nothing is. */
export async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  const pids = cgroupPids(CGROUP);
  if (pids.length > 0) found.push(`processes ${pids.join(' ')}`);
  if (existsSync(`/sys/fs/cgroup/pids/${CGROUP}`)) found.push(`cgroup ${CGROUP}`);
  const { stdout: netns } = await runProgram(['ip', 'netns', 'list']);
  const ns = netns.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${PREFIX}-`));
  if (ns.length > 0) found.push(`network namespaces ${ns.join(' ')}`);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(STATE) || l.includes(`/${PREFIX}-`));
  if (mounts.length > 0) found.push(`mounts ${mounts.length}`);
  const { stdout: links } = await runProgram(['ip', '-o', 'link', 'show']);
  const ifs = links.split('\n').filter((l) => / (cp|scan|mon|n\d)@/.test(l));
  if (ifs.length > 0) found.push(`interfaces ${ifs.length}`);
  const { stdout: tables } = await runProgram(['nft', 'list', 'tables']).catch(() => ({ stdout: '' }));
  if (/kube-proxy|kube_portsentry/.test(tables)) found.push(`nftables tables: ${tables.trim()}`);
  if (existsSync(STATE)) found.push(STATE);
  return found;
}

export { inNs };
