// A real Kubernetes control plane for tests: etcd and kube-apiserver built from their Go
// modules (test/envtest/build.sh), on free loopback ports, with a temp data dir, a
// service-account signing key (TokenRequest and TokenReview work), a static admin token
// and an admin kubeconfig. Everything is torn down by stop(), and by process exit when a
// test dies first.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { jsonRequest } from '../src/net/json-request.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { runProgram } from '../src/respond/run-program.js';
import { hasTool } from './prereq.js';
import { freePort } from './free-port.js';

const BUILD = fileURLToPath(new URL('../../test/envtest/build.sh', import.meta.url));

let binDir: Promise<string> | undefined;

/** Builds (first time on a machine) or finds the control-plane binaries. */
export function controlPlaneBinaries(): Promise<string> {
  binDir ??= runProgram(['bash', BUILD], { timeoutMs: 30 * 60_000 }).then((r) => r.stdout.trim().split('\n').at(-1)!);
  return binDir;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function start(command: string, args: string[], log: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const keep = (d: Buffer) => {
    log.push(d.toString());
    if (log.length > 200) log.splice(0, log.length - 200);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

export interface ControlPlane {
  url: string;
  /** Bearer token of a member of system:masters. */
  adminToken: string;
  kubeconfig: string;
  /** The CA that signs the API server's serving certificate (PEM). */
  ca: string;
  dir: string;
  bin: string;
  kubectl(args: string[], options?: { input?: string }): Promise<{ stdout: string; stderr: string }>;
  /** GET/POST/... against the API as admin; resolves with status and parsed JSON body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
  /** Stops kube-apiserver alone (etcd keeps the data), as in an outage of the control plane. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same address with the same flags; resolves when ready. */
  startApiServer(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** The address the API server publishes in the kubernetes Service's endpoints. */
  advertiseAddress?: string;
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = await controlPlaneBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'kps-envtest-'));
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const adminToken = randomBytes(24).toString('hex');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(join(dir, 'tokens.csv'), `${adminToken},envtest-admin,envtest-admin-uid,system:masters\n`);

  const log: string[] = [];
  const etcd = start(
    join(bin, 'etcd'),
    [
      '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--advertise-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
    ],
    log,
  );
  const apiserverArgs = [
      '--etcd-servers', `http://127.0.0.1:${etcdClient}`,
      '--bind-address', '127.0.0.1',
      '--advertise-address', options.advertiseAddress ?? '127.0.0.1',
      '--secure-port', String(apiPort),
      '--cert-dir', join(dir, 'certs'),
      '--token-auth-file', join(dir, 'tokens.csv'),
      '--service-account-key-file', join(dir, 'sa.pub'),
      '--service-account-signing-key-file', join(dir, 'sa.key'),
      '--service-account-issuer', 'https://kube-portsentry-envtest.invalid',
      '--authorization-mode', 'RBAC',
      '--service-cluster-ip-range', '10.96.0.0/24',
  ];
  let apiserver = start(join(bin, 'kube-apiserver'), apiserverArgs, log);
  const url = `https://127.0.0.1:${apiPort}`;
  const halt = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    child.kill('SIGKILL');
    await exited;
  };
  const stop = async (): Promise<void> => {
    pool.destroy();
    await halt(apiserver);
    await halt(etcd);
    await rm(dir, { recursive: true, force: true });
  };

  // Verified requests share a keep-alive pool: benches write thousands of objects through it.
  const pool = new HttpsAgent({ keepAlive: true, maxSockets: 16 });
  const api = (method: string, path: string, body?: unknown, ca?: string) =>
    jsonRequest(
      new URL(`${url}${path}`),
      {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        ...(ca ? { ca, agent: pool } : { rejectUnauthorized: false }),
      },
      body,
      10_000,
    );

  const ready = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (apiserver.exitCode !== null || etcd.exitCode !== null) throw new Error('control plane exited');
      const r = await api('GET', '/readyz').catch(() => ({ status: 0 }));
      if (r.status === 200) return;
      if (Date.now() > deadline) throw new Error('control plane not ready within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  try {
    await ready();
  } catch (err) {
    const tail = log.join('').split('\n').slice(-30).join('\n');
    await stop();
    throw new Error(`${(err as Error).message}; last log lines:\n${tail}`);
  }

  // The self-signed serving certificate the API server generated is its own CA.
  const ca = await readFile(join(dir, 'certs', 'apiserver.crt'), 'utf8');
  const kubeconfig = join(dir, 'admin.kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'envtest', cluster: { server: url, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
      users: [{ name: 'admin', user: { token: adminToken } }],
      contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'admin' } }],
      'current-context': 'envtest',
    }),
  );
  return {
    url,
    adminToken,
    kubeconfig,
    ca,
    dir,
    bin,
    kubectl: (args, options = {}) => runProgram([join(bin, 'kubectl'), '--kubeconfig', kubeconfig, ...args], { timeoutMs: 60_000, ...options }),
    api: (method, path, body) => api(method, path, body, ca),
    stop,
    stopApiServer: () => halt(apiserver),
    startApiServer: async () => {
      if (apiserver.exitCode === null && apiserver.signalCode === null) throw new Error('kube-apiserver is still running');
      apiserver = start(join(bin, 'kube-apiserver'), apiserverArgs, log);
      await ready();
    },
  };
}

/**
 * One control plane for a test file: started before its tests, stopped after them.
 * Without Go (needed to build it) the tests skip locally and fail under CI.
 */
export function useControlPlane(
  setup?: (cp: ControlPlane) => Promise<void>,
  options: ControlPlaneOptions = {},
  /** Runs before the control plane stops (clients of it that must go first). */
  teardown?: () => Promise<void>,
): {
  readonly cp: ControlPlane | undefined;
  readonly why: string | undefined;
} {
  const state: { cp: ControlPlane | undefined; why: string | undefined } = { cp: undefined, why: undefined };
  before(async () => {
    if (!hasTool('go')) {
      if (process.env.CI === 'true') throw new Error('prerequisite missing under CI: go');
      state.why = 'needs go to build kube-apiserver and etcd';
      return;
    }
    const started = Date.now();
    state.cp = await startControlPlane(options);
    process.stdout.write(`# control plane ready in ${Date.now() - started} ms\n`);
    await setup?.(state.cp);
  });
  after(async () => {
    if (state.cp) await teardown?.();
    await state.cp?.stop();
  });
  return state;
}
