// The chart's agent and operator together, as their pods would run them: the chart is
// installed on a real API server; the target network namespace stands for a node (host
// network), and in it the agent and the operator run with the installed DaemonSet's and
// Deployment's arguments (only file paths moved), each with its own ServiceAccount's
// credentials. The agent reaches the operator by the Service in --operator-url (its cluster
// IP from the API, which the node translates as kube-proxy would) and verifies it with the
// chart's CA. nmap from the scanner namespace must end as a BlockedHost reported by
// the node and enforced in the node's firewall set.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { CHART, helm, helmReady, withValuesFile } from '../../support/helm.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { withPrivileges, type Privileges } from '../../support/privilege.js';
import { CLI } from '../../support/sentry-process.js';
import { podBoundToken } from '../../support/tokens.js';

const NS = 'kps-system';
const RELEASE = 'kps';
const OPERATOR = `${RELEASE}-kube-portsentry-operator`;
const AGENT = `${RELEASE}-kube-portsentry-agent`;
const NODE = 'node-a';
const FORWARDER = fileURLToPath(new URL('../../support/loopback-forwarder.js', import.meta.url));

type Container = { args: string[]; env?: { name: string; value?: string }[]; securityContext: { capabilities: { add: string[] } } };
type Pod = { spec: { template: { spec: { containers: Container[] } } } };

async function getJson<T>(cp: ControlPlane, args: string[]): Promise<T> {
  return JSON.parse((await cp.kubectl(['get', ...args, '-o', 'json'])).stdout) as T;
}

async function kubeconfigFor(cp: ControlPlane, file: string, serviceAccount: string): Promise<string> {
  const token = (await cp.kubectl(['-n', NS, 'create', 'token', serviceAccount, '--duration', '1h'])).stdout.trim();
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

describe('agent and operator with the chart\'s arguments and RBAC, on a node that is a network namespace', { concurrency: false }, () => {
  const env = useControlPlane();
  let net: TestNet | undefined;
  let dir: string | undefined;
  let relay: Server | undefined;
  const children: { name: string; child: ChildProcess; log: string[] }[] = [];
  const logs = () => children.map((c) => `--- ${c.name}:\n${c.log.join('').split('\n').slice(-25).join('\n')}`).join('\n');

  before(async () => {
    if (process.getuid?.() !== 0) return;
    net = await TestNet.create();
  });
  after(async () => {
    for (const c of children) c.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of children) c.child.kill('SIGKILL');
    relay?.close();
    await net?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** fetch() from inside the node's namespace; the body, or undefined on any failure. */
  const inNode = async (url: string): Promise<string | undefined> => {
    const script = `fetch(${JSON.stringify(url)}).then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); }, () => process.exit(1))`;
    return net!.exec(net!.target, [process.execPath, '-e', script]).then(
      (r) => r.stdout,
      () => undefined,
    );
  };
  const until = async <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = await probe().catch(() => undefined);
      if (got !== undefined) return got;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logs()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  test('a scan of the node becomes a BlockedHost, reported by the node and enforced in its firewall set', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!prerequisites(t, { root: true, tools: ['ip', 'nmap', 'nft', 'capsh'] }) || !helmReady(t)) return;
    const n = net!;
    dir = await mkdtemp(join(tmpdir(), 'kps-node-'));

    const values = {
      defaultPolicy: {
        // One node here: its stealth detection counts cluster-wide only with the opt-in.
        spec: { tcp: { mode: 'stealth', ports: [1, 11, 79] }, udp: { mode: 'off' }, trigger: { count: 1 }, response: { tcp: 'block', scope: 'cluster', firewall: 'nftables', clusterEvidence: 'singleNode' } },
      },
    };
    await withValuesFile(values, (file) => helm(['install', RELEASE, CHART, '--namespace', NS, '--create-namespace', '-f', file], { kubeconfig: cp.kubeconfig }));
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } }) });
    await cp.kubectl(['patch', 'node', NODE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: TARGET_V4 }] } })]);

    // What the pods mount: the TLS Secret (the operator all of it, the agent only ca.crt)
    // and the agent's projected token for audience kube-portsentry.
    const secret = await getJson<{ data: Record<string, string> }>(cp, ['-n', NS, 'secret', `${OPERATOR}-tls`]);
    for (const key of ['tls.crt', 'tls.key', 'ca.crt']) await writeFile(join(dir, key), Buffer.from(secret.data[key]!, 'base64'));
    // The projected token as the kubelet makes it: bound to the agent's pod on this node.
    const { token: reportToken } = await podBoundToken(cp, { namespace: NS, serviceAccount: AGENT, pod: `${AGENT}-test`, node: NODE });
    await writeFile(join(dir, 'token'), reportToken);

    // The API server listens on the host's loopback; the node namespace reaches it through
    // a Unix socket (a relay on each side), at the same address and port.
    const apiPort = Number(new URL(cp.url).port);
    const sock = join(dir, 'api.sock');
    relay = createServer((c) => {
      const up = createConnection({ host: '127.0.0.1', port: apiPort });
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay!.listen(sock, r));
    const relayChild = n.spawn(n.target, [process.execPath, FORWARDER, `${apiPort}=${sock}`]);
    children.push({ name: 'relay', child: relayChild, log: [] });
    await new Promise<void>((resolve, reject) => {
      relayChild.stdout!.once('data', () => resolve());
      relayChild.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
    });

    // The agent looks the Service in its --operator-url up in the API and connects to its
    // cluster IP; as kube-proxy would, the node translates that address to where the
    // operator listens (here, on the node itself).
    const ds = await getJson<Pod>(cp, ['-n', NS, 'daemonset', AGENT]);
    const agentContainer = ds.spec.template.spec.containers[0]!;
    const agentChartArgs = agentContainer.args;
    const operatorUrl = new URL(agentChartArgs.find((a) => a.startsWith('--operator-url='))!.slice('--operator-url='.length));
    const service = await getJson<{ spec: { clusterIP: string } }>(cp, ['-n', NS, 'service', operatorUrl.hostname.split('.')[0]!]);
    await n.exec(n.target, ['nft', '-f', '-'], {
      input: `table ip kps_test_service_proxy {
        chain output { type nat hook output priority -100; ip daddr ${service.spec.clusterIP} tcp dport ${operatorUrl.port} dnat to ${TARGET_V4}; }
      }`,
    });

    const start = (
      name: string,
      container: Container,
      files: Map<string, string>,
      env: Record<string, string>,
      kubeconfig: string,
      privileges?: Privileges,
    ) => {
      const args = container.args.map((a) => {
        const [flag] = a.split('=', 1) as [string];
        const file = files.get(flag);
        if (file) {
          files.delete(flag);
          return `${flag}=${file}`;
        }
        return a.replace(/\$\((\w+)\)/g, (_m, v: string) => env[v] ?? `$(${v})`);
      });
      assert.deepEqual([...files.keys()], [], `${name}: the chart no longer passes these flags`);
      // The container's literal environment (the agent's runtime settings) as the pod has it.
      const literal = (container.env ?? []).filter((e) => e.value !== undefined).map((e) => `${e.name}=${e.value}`);
      const argv = ['/usr/bin/env', ...literal, process.execPath, CLI, ...args, `--kubeconfig=${kubeconfig}`];
      const child = n.spawn(n.target, privileges ? withPrivileges(argv, privileges) : argv);
      const log: string[] = [];
      child.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
      child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
      children.push({ name, child, log });
      return log;
    };

    const dep = await getJson<Pod>(cp, ['-n', NS, 'deployment', OPERATOR]);
    const operatorLog = start(
      'operator',
      dep.spec.template.spec.containers[0]!,
      new Map([
        ['--tls-cert', join(dir, 'tls.crt')],
        ['--tls-key', join(dir, 'tls.key')],
      ]),
      { POD_NAMESPACE: NS, POD_NAME: 'operator-0' },
      await kubeconfigFor(cp, join(dir, 'operator.kubeconfig'), OPERATOR),
    );
    await until('the operator to lead', 30_000, async () => ((await inNode('http://127.0.0.1:9110/metrics'))?.match(/^portsentry_leader 1$/m) ? true : undefined));

    const agentLog = start(
      'agent',
      agentContainer,
      new Map([
        ['--operator-ca', join(dir, 'ca.crt')],
        ['--token-file', join(dir, 'token')],
      ]),
      { NODE_NAME: NODE, POD_NAMESPACE: NS },
      await kubeconfigFor(cp, join(dir, 'agent.kubeconfig'), AGENT),
      // Exactly the capabilities the chart's securityContext adds; everything else dropped.
      { capabilities: agentContainer.securityContext.capabilities.add },
    );
    await until('the agent to be ready', 30_000, async () => ((await inNode('http://127.0.0.1:9109/readyz')) !== undefined ? true : undefined));
    const agentMetrics = await until('agent metrics', 10_000, () => inNode('http://127.0.0.1:9109/metrics'));
    assert.match(agentMetrics, new RegExp(`^portsentry_agent_info\\{node="${NODE}"\\} 1$`, 'm'));

    await n.exec(n.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,11,79', TARGET_V4]);

    const bh = await until('the BlockedHost', 30_000, async () => {
      const list = await getJson<{ items: { spec: { address: string; source: string }; status?: { reportingNodes?: string[] } }[] }>(cp, ['blockedhosts']);
      return list.items.find((b) => b.spec.address === SCANNER_V4 && b.status?.reportingNodes?.includes(NODE));
    });
    assert.equal(bh.spec.source, 'detected');
    const ruleset = await until('the scanner in the node firewall set', 15_000, async () => {
      const { stdout } = await n.exec(n.target, ['nft', 'list', 'ruleset']);
      return stdout.includes(SCANNER_V4) ? stdout : undefined;
    });
    assert.match(ruleset, /198\.18\.0\.1/);
    assert.match((await inNode('http://127.0.0.1:9109/metrics')) ?? '', /^portsentry_reports_sent_total\{result="ok"\} [1-9]/m);
    assert.equal(await n.connect(TARGET_V4, 79), 'timeout', 'the blocked scanner still reaches the node');

    for (const [name, log] of [['operator', operatorLog], ['agent', agentLog]] as const) {
      assert.doesNotMatch(log.join(''), /forbidden|\b403\b/i, `the API server refused the ${name} something:\n${logs()}`);
    }
    // With the chart's RBAC the operator reads the service-account keys: report tokens are checked locally first.
    assert.match(operatorLog.join(''), /service-account signing keys read/);
  });
});
