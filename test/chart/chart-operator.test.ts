// The chart's operator contract and RBAC against the real operator: the chart is
// installed on a real API server, and the operator runs as a process with exactly the
// arguments of the installed Deployment (addresses and file paths moved to this machine)
// and the credentials of the chart's ServiceAccount, so every API call it makes is
// authorized by the chart's Roles or fails. An agent's report reaches it with a token of
// the chart's agent ServiceAccount, over TLS verified with the chart's CA.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { nodePolicyConfigMapName } from '../../src/k8s/objects.js';
import { OUTPUT_NAME } from '../../src/operator/outputs.js';
import { CHART, helm, helmReady, withValuesFile } from '../../support/helm.js';
import { podBoundToken } from '../../support/tokens.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { CLI } from '../../support/sentry-process.js';
import { freePort } from '../../support/free-port.js';

const NS = 'kps-system';
const RELEASE = 'kps';
const OPERATOR = `${RELEASE}-kube-portsentry-operator`;
const AGENT_SA = `${RELEASE}-kube-portsentry-agent`;
const POLICY = `${RELEASE}-kube-portsentry-default`;
const SCANNER = '198.51.100.9';

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, log: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; operator log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function getJson<T>(cp: ControlPlane, args: string[]): Promise<T> {
  return JSON.parse((await cp.kubectl(['get', ...args, '-o', 'json'])).stdout) as T;
}

/** A kubeconfig that authenticates with a ServiceAccount token. */
async function kubeconfigFor(cp: ControlPlane, dir: string, serviceAccount: string): Promise<string> {
  const token = (await cp.kubectl(['-n', NS, 'create', 'token', serviceAccount, '--duration', '1h'])).stdout.trim();
  const file = join(dir, `${serviceAccount}.kubeconfig`);
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'envtest', cluster: { server: cp.url, 'certificate-authority-data': Buffer.from(cp.ca).toString('base64') } }],
      users: [{ name: serviceAccount, user: { token } }],
      contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: serviceAccount } }],
      'current-context': 'envtest',
    }),
  );
  return file;
}

describe('the operator with the chart\'s arguments and RBAC', { concurrency: false }, () => {
  const env = useControlPlane();
  let operator: ChildProcess | undefined;
  let dir: string | undefined;
  const log: string[] = [];
  const tail = () => log.join('').split('\n').slice(-40).join('\n');
  after(async () => {
    operator?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('runs as the chart\'s ServiceAccount: leads, reconciles the policy, publishes node policy', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    dir = await mkdtemp(join(tmpdir(), 'kps-operator-'));
    const values = {
      defaultPolicy: { spec: { trigger: { count: 0 }, response: { scope: 'cluster', tcp: 'block' } } },
      outputs: { networkPolicy: { enabled: true, namespaces: ['default'] } },
    };
    await withValuesFile(values, (file) => helm(['install', RELEASE, CHART, '--namespace', NS, '--create-namespace', '-f', file], { kubeconfig: cp.kubeconfig }));
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } } }),
    });

    // The TLS Secret the chart made, as the pod would mount it.
    const secret = await getJson<{ data: Record<string, string> }>(cp, ['-n', NS, 'secret', `${OPERATOR}-tls`]);
    for (const key of ['tls.crt', 'tls.key', 'ca.crt']) await writeFile(join(dir, key), Buffer.from(secret.data[key]!, 'base64'));

    // The installed Deployment's arguments, with the pod's environment and this machine's
    // addresses and paths.
    const dep = await getJson<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>(cp, ['-n', NS, 'deployment', OPERATOR]);
    const [reportsPort, metricsPort] = [await freePort(), await freePort()];
    const moved = new Map([
      ['--listen-address', `127.0.0.1:${reportsPort}`],
      ['--metrics-address', `127.0.0.1:${metricsPort}`],
      ['--tls-cert', join(dir, 'tls.crt')],
      ['--tls-key', join(dir, 'tls.key')],
    ]);
    const chartArgs = dep.spec.template.spec.containers[0]!.args;
    assert.equal(chartArgs[0], 'operator');
    const args = chartArgs.slice(1).map((a) => {
      const [flag] = a.split('=', 1) as [string];
      if (moved.has(flag)) {
        const value = moved.get(flag)!;
        moved.delete(flag);
        return `${flag}=${value}`;
      }
      return a.replace('$(POD_NAMESPACE)', NS).replace('$(POD_NAME)', 'operator-0');
    });
    assert.deepEqual([...moved.keys()], [], 'the chart no longer passes these flags');
    args.push(`--kubeconfig=${await kubeconfigFor(cp, dir, OPERATOR)}`);
    operator = spawn(process.execPath, [CLI, 'operator', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    operator.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
    operator.stderr!.on('data', (d: Buffer) => log.push(d.toString()));

    const metrics = `http://127.0.0.1:${metricsPort}`;
    await until('/readyz', 30_000, async () => ((await fetch(`${metrics}/readyz`)).ok ? true : undefined), tail);
    await until('portsentry_leader 1', 30_000, async () => (/^portsentry_leader 1$/m.test(await (await fetch(`${metrics}/metrics`)).text()) ? true : undefined), tail);
    // coordination.k8s.io leases in the release namespace.
    const leases = await getJson<{ items: { spec: { holderIdentity?: string } }[] }>(cp, ['-n', NS, 'leases']);
    assert.deepEqual(leases.items.map((l) => l.spec.holderIdentity), ['operator-0']);

    // Policy status (portsentrypolicies/status), the node's ConfigMap (configmaps).
    const ready = await until(
      'the default policy to be Ready',
      30_000,
      async () => {
        const p = await getJson<{ status?: { matchedNodes?: number; conditions?: { type: string; status: string }[] } }>(cp, ['portsentrypolicy', POLICY]);
        return p.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? p.status : undefined;
      },
      tail,
    );
    assert.equal(ready.matchedNodes, 1);
    await until('the node-a ConfigMap', 30_000, () => getJson(cp, ['-n', NS, 'configmap', nodePolicyConfigMapName('node-a')]), tail);
  });

  test('accepts a report from the chart\'s agent ServiceAccount only, over TLS the chart\'s CA verifies, and blocks cluster-wide', async (t) => {
    const cp = env.cp;
    if (!cp || !operator || !dir) return t.skip(env.why ?? 'the operator did not start');
    const dep = await getJson<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>(cp, ['-n', NS, 'deployment', OPERATOR]);
    const port = Number(/--listen-address=127\.0\.0\.1:(\d+)/.exec(operator.spawnargs.join(' '))![1]);
    // The name the agents dial, from the DaemonSet's --operator-url.
    const ds = await getJson<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>(cp, ['-n', NS, 'daemonset', `${RELEASE}-kube-portsentry-agent`]);
    const url = new URL(ds.spec.template.spec.containers[0]!.args.find((a) => a.startsWith('--operator-url='))!.slice('--operator-url='.length));
    assert.equal(url.port, String(/--listen-address=0\.0\.0\.0:(\d+)/.exec(dep.spec.template.spec.containers[0]!.args.join(' '))![1]));
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8');

    const now = Date.now();
    const report = {
      node: 'node-a',
      policy: POLICY,
      sources: [{ source: SCANNER, probes: [{ protocol: 'tcp', port: 1, type: 'syn', time: now }], count: 1, firstSeen: now, lastSeen: now, verified: true, blocked: true }],
    };
    const post = (token: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            // TLS is checked against the Service name the agents use.
            servername: url.hostname,
            ca,
            method: 'POST',
            path: '/v1/reports',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(report));
      });
    // As the kubelet gives them: bound to a pod on node-a.
    const token = async (sa: string, audience: string) =>
      (await podBoundToken(cp, { namespace: NS, serviceAccount: sa, pod: `${sa}-${audience}`.slice(0, 63), node: 'node-a', audience })).token;

    assert.equal((await post(await token(AGENT_SA, 'someone-else'))).status, 401, 'a token for another audience');
    assert.equal((await post(await token(OPERATOR, 'kube-portsentry'))).status, 403, 'a token of another ServiceAccount');
    const ok = await post(await token(AGENT_SA, 'kube-portsentry'));
    assert.equal(ok.status, 200, ok.body);

    // blockedhosts create, blockedhosts/status, Events in default.
    const bh = await until(
      'the BlockedHost with its status',
      30_000,
      async () => {
        const list = await getJson<{ items: { spec: { address: string; source: string }; status?: { reportingNodes?: string[] } }[] }>(cp, ['blockedhosts']);
        return list.items.find((b) => b.spec.address === SCANNER && b.status?.reportingNodes?.length);
      },
      tail,
    );
    assert.equal(bh.spec.source, 'detected');
    assert.deepEqual(bh.status?.reportingNodes, ['node-a']);
    await until(
      'Events in default',
      30_000,
      async () => {
        const events = await getJson<{ items: { reason: string; involvedObject: { kind: string } }[] }>(cp, ['-n', 'default', 'events']);
        const reasons = events.items.map((e) => `${e.involvedObject.kind}/${e.reason}`);
        return reasons.includes('BlockedHost/Blocked') && reasons.includes('BlockedHost/ScanDetected') ? true : undefined;
      },
      tail,
    );
    // The NetworkPolicy output (networkpolicies), written once something is blocked.
    await until('the NetworkPolicy output', 30_000, () => getJson(cp, ['-n', 'default', 'networkpolicy', OUTPUT_NAME]), tail);
  });

  test('deletes an expired BlockedHost, stops cleanly, and was never refused by the API server', async (t) => {
    const cp = env.cp;
    if (!cp || !operator) return t.skip(env.why ?? 'the operator did not start');
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'BlockedHost',
        metadata: { name: 'expired' },
        spec: { address: '203.0.113.5', reason: 'old', source: 'detected', expiresAt: '2001-01-01T00:00:00Z' },
      }),
    });
    await until(
      'the expired BlockedHost to go',
      30_000,
      () => cp.kubectl(['get', 'blockedhost', 'expired']).then(() => undefined, (err: Error) => (/NotFound/.test(err.message) ? true : undefined)),
      tail,
    );
    const exited = new Promise<number | null>((resolve) => operator!.once('exit', (code) => resolve(code)));
    operator.kill('SIGTERM');
    assert.equal(await exited, 0, tail());
    assert.doesNotMatch(log.join(''), /forbidden|\b403\b/i, 'the API server refused the operator something');
  });
});
