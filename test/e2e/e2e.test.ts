// The product on a real cluster, driven as a cluster admin would: the image built from the
// Dockerfile, the chart installed by Helm, pods started by real kubelets and containerd,
// tokens projected by the kubelet, the operator found through CoreDNS, scans from a host
// outside the cluster, Prometheus scraping over the network. The cluster is brought up for
// this file and removed after it (KPS_E2E_REUSE=1 uses one left up by `npm run e2e:up`).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test as nodeTest, type TestContext } from 'node:test';
import { parse } from 'yaml';
import { dropCounters } from '../../src/respond/firewall/nftables.js';
import { runProgram } from '../../src/respond/run-program.js';
import { CHART, REPO } from '../../support/helm.js';
import { hasTool } from '../../support/prereq.js';
import { attach, down, leftovers, up, type Cluster } from './cluster.js';
import { acquireRunLock } from './run-lock.js';
import {
  AGENT, NAMESPACE, OPERATOR, RELEASE, agentPods, containerPid, duplicateKeys, eventually, forgedSyn, nmapConnect, nodeBlocked, operatorPods, pods, procStatus, reach,
} from './driver.js';
import { CONTROL_PLANE, DNS_SERVICE_IP, GATEWAY, NODES, SCANNER, UPSTREAM_DNS } from './layout.js';
import { prometheusApi, query, startPrometheus } from './monitor.js';

const TOOLS = ['containerd', 'runc', 'ctr', 'buildah', 'podman', 'mmdebstrap', 'go', 'gcc', 'openssl', 'nft', 'nmap', 'hping3', 'prometheus'];
const NET_ADMIN_AND_RAW = (1n << 12n) | (1n << 13n);
const [NODE1, NODE2] = [NODES[0]!, NODES[1]!];
const TRIPWIRES = [1524, 2000, 4000, 6667, 12345];
const WORKLOAD_NS = 'e2e-workload';
const NODE_PORT = 30080;

type BlockedHost = { metadata: { name: string }; spec: { address: string; source: string }; status?: { reportingNodes?: string[] } };
type Lease = { spec: { holderIdentity?: string } };

const blockingPolicy = (name: string, priority: number, tcp: object, clusterEvidence?: 'corroborated') => ({
  apiVersion: 'kube-portsentry.io/v1alpha1',
  kind: 'PortSentryPolicy',
  metadata: { name },
  spec: { priority, tcp, udp: { mode: 'off' }, response: { tcp: 'block', scope: 'cluster', duration: '30m', ...(clusterEvidence ? { clusterEvidence } : {}) } },
});

// A web server pinned to node 2, behind a NodePort: what the scanner must lose once blocked.
const workload = (image: string) => [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: WORKLOAD_NS } },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: WORKLOAD_NS },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': NODE2.name },
          containers: [
            {
              name: 'web',
              image,
              imagePullPolicy: 'Never',
              command: ['node', '-e', "require('node:http').createServer((q, s) => s.end('ok')).listen(8080)"],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: WORKLOAD_NS },
    spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 8080, targetPort: 8080, nodePort: NODE_PORT }] },
  },
];

function missing(): string[] {
  const out = process.getuid?.() === 0 ? [] : ['root'];
  return out.concat(TOOLS.filter((t) => !hasTool(t)));
}

describe('a real cluster: image, chart, kubelets, containerd, CoreDNS', { concurrency: false }, () => {
  const why = missing();
  if (why.length > 0 && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  const reuse = process.env.KPS_E2E_REUSE === '1';
  let cluster: Cluster;
  let image: string;
  let webPodIp: string;
  const skip = (t: { skip(msg: string): void }) => {
    if (why.length === 0) return false;
    t.skip(`needs ${why.join(', ')}`);
    return true;
  };
  // A failing test prints what the product logged, so a run that fails on a machine of its
  // own (CI) explains itself.
  const test = (name: string, fn: (t: TestContext) => Promise<void>) =>
    nodeTest(name, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        await printProductLogs().catch((e: Error) => process.stdout.write(`# product logs unavailable: ${e.message}\n`));
        throw err;
      }
    });
  const printProductLogs = async () => {
    for (const pod of [...(await agentPods(cluster)), ...(await operatorPods(cluster))]) {
      const { stdout } = await cluster.kubectl(['-n', NAMESPACE, 'logs', pod.metadata.name, '--tail=150']);
      process.stdout.write(`# --- ${pod.metadata.name} on ${pod.spec.nodeName} (last 150 lines)\n${stdout.replace(/^/gm, '# ')}\n`);
    }
  };
  const apply = (objects: object[]) => cluster.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
  const bhFor = async (address: string) =>
    (await cluster.json<{ items: BlockedHost[] }>(['get', 'blockedhosts'])).items.find((b) => b.spec.address === address);

  let releaseRunLock: (() => void) | undefined;
  before(async () => {
    if (why.length > 0) {
      process.stdout.write(`# skipping the real-cluster suite: needs ${why.join(', ')}\n`);
      return;
    }
    const started = Date.now();
    if (!reuse) releaseRunLock = await acquireRunLock((l) => process.stdout.write(`# e2e: ${l}\n`));
    cluster = reuse ? await attach() : await up();
    process.stdout.write(`# cluster ${reuse ? 'attached' : 'up'} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    image = (await readFile(join(cluster.images, 'images.txt'), 'utf8')).split('\n').find((l) => l.includes('/kube-portsentry:'))!.split(' ')[0]!;
  });

  after(async () => {
    if (why.length > 0 || reuse) return;
    await down();
    releaseRunLock?.();
    assert.deepEqual(await leftovers(), []);
  });

  test('install: helm install, one Ready agent per node, two operators with one leader, the default policy Ready', async (t) => {
    if (skip(t)) return;
    await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    await cluster.kubectl(['label', 'namespace', NAMESPACE, 'pod-security.kubernetes.io/enforce=privileged']);
    // The image is in every node's containerd already (no registry): never pull it.
    await cluster.helm(['install', RELEASE, CHART, '--namespace', NAMESPACE, '--set', 'image.pullPolicy=Never']);
    await cluster.kubectl(['-n', NAMESPACE, 'rollout', 'status', `daemonset/${AGENT}`, '--timeout=180s'], { timeoutMs: 200_000 });
    await cluster.kubectl(['-n', NAMESPACE, 'rollout', 'status', `deployment/${OPERATOR}`, '--timeout=180s'], { timeoutMs: 200_000 });

    const agents = await agentPods(cluster);
    assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), NODES.map((n) => n.name));
    const operators = await operatorPods(cluster);
    assert.equal(operators.length, 2);
    assert.notEqual(operators[0]!.spec.nodeName, operators[1]!.spec.nodeName, 'the two replicas spread over the two nodes');
    const leader = await eventually('a leader', async () => {
      const lease = await cluster.json<Lease>(['-n', NAMESPACE, 'get', 'lease', 'kube-portsentry-operator']);
      return operators.find((p) => p.metadata.name === lease.spec.holderIdentity);
    }, 60_000);
    assert.ok(leader);

    const policy = await eventually('the default policy Ready on both nodes', async () => {
      const p = await cluster.json<{ status?: { matchedNodes?: number; conditions?: { type: string; status: string }[] } }>([
        'get', 'portsentrypolicy', `${RELEASE}-kube-portsentry-default`,
      ]);
      return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.status.matchedNodes === 2 ? p : undefined;
    }, 60_000);
    assert.ok(policy);
  });

  test('logs: one JSON object per line, no key twice (log pipelines refuse or mangle duplicates)', async (t) => {
    if (skip(t)) return;
    for (const selector of ['app.kubernetes.io/component=agent', 'app.kubernetes.io/component=operator']) {
      const { stdout } = await cluster.kubectl(['-n', NAMESPACE, 'logs', '-l', selector, '--tail=-1', '--prefix=false']);
      const lines = stdout.split('\n').filter(Boolean);
      assert.ok(lines.length > 3, `${selector} logged`);
      for (const line of lines) {
        assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
        assert.deepEqual(duplicateKeys(line), [], line);
      }
    }
  });

  test('the runtime enforces the securityContext: capabilities, user, read-only root, seccomp', async (t) => {
    if (skip(t)) return;
    for (const pod of await agentPods(cluster)) {
      const s = await procStatus(await containerPid(cluster, pod, 'agent'));
      assert.equal(s.capEff, NET_ADMIN_AND_RAW, `${pod.metadata.name}: effective capabilities are NET_ADMIN and NET_RAW only`);
      assert.equal(s.capBnd, NET_ADMIN_AND_RAW, `${pod.metadata.name}: nothing else in the bounding set`);
      assert.equal(s.uid, 0);
      assert.equal(s.noNewPrivs, true);
      assert.equal(s.seccomp, 2, 'seccomp in filter mode');
    }
    for (const pod of await operatorPods(cluster)) {
      const s = await procStatus(await containerPid(cluster, pod, 'operator'));
      assert.equal(s.capEff, 0n, `${pod.metadata.name}: no capabilities`);
      assert.equal(s.capBnd, 0n);
      assert.equal(s.uid, 10001);
      assert.equal(s.noNewPrivs, true);
      assert.equal(s.seccomp, 2);
    }
    for (const [pod, container] of [[(await agentPods(cluster))[0]!, 'agent'], [(await operatorPods(cluster))[0]!, 'operator']] as const) {
      await assert.rejects(
        cluster.kubectl(['-n', NAMESPACE, 'exec', pod.metadata.name, '-c', container, '--', 'sh', '-c', 'echo x > /probe']),
        /Read-only file system/,
        `${container}: the root filesystem is read-only`,
      );
    }
  });

  test('tokens from the kubelet: pod-bound, audience kube-portsentry; a token of node 1 cannot report for node 2', async (t) => {
    if (skip(t)) return;
    const agent = (await agentPods(cluster)).find((p) => p.spec.nodeName === NODE1.name)!;
    const token = (await cluster.kubectl(['-n', NAMESPACE, 'exec', agent.metadata.name, '--', 'cat', '/var/run/kube-portsentry/token/token'])).stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
      aud: string[];
      exp: number;
      iat: number;
      'kubernetes.io': { pod: { name: string; uid: string }; node?: { name: string }; serviceaccount: { name: string } };
    };
    assert.deepEqual(claims.aud, ['kube-portsentry']);
    assert.equal(claims['kubernetes.io'].pod.name, agent.metadata.name);
    assert.equal(claims['kubernetes.io'].pod.uid, agent.metadata.uid);
    assert.equal(claims['kubernetes.io'].node?.name, NODE1.name);
    assert.equal(claims['kubernetes.io'].serviceaccount.name, AGENT);
    assert.equal(claims.exp - claims.iat, 3600);

    // From node 1's network, with node 1's token, to the operator's Service: a report for
    // node 1 is accepted, the same report for node 2 refused.
    const ca = (await cluster.kubectl(['-n', NAMESPACE, 'get', 'secret', `${OPERATOR}-tls`, '-o', 'jsonpath={.data.ca\\.crt}'])).stdout;
    const serviceIp = (await cluster.kubectl(['-n', NAMESPACE, 'get', 'service', OPERATOR, '-o', 'jsonpath={.spec.clusterIP}'])).stdout;
    const post = async (node: string): Promise<number> => {
      const body = JSON.stringify({ node, policy: `${RELEASE}-kube-portsentry-default`, sources: [] });
      const script = `
        const req = require('node:https').request({ host: ${JSON.stringify(serviceIp)}, port: 8443, path: '/v1/reports', method: 'POST',
          servername: ${JSON.stringify(`${OPERATOR}.${NAMESPACE}.svc`)}, ca: Buffer.from(${JSON.stringify(ca)}, 'base64'),
          headers: { authorization: 'Bearer ' + process.argv[1], 'content-type': 'application/json' } },
          (res) => { res.resume(); console.log(res.statusCode); });
        req.on('error', (e) => { console.log(0); });
        req.end(${JSON.stringify(body)});`;
      const { stdout } = await runProgram(['ip', 'netns', 'exec', NODE1.ns, process.execPath, '-e', script, token], { timeoutMs: 30_000 });
      return Number(stdout.trim());
    };
    // The Service may pick the replica that is not leading (503); ask until the leader answers.
    const answer = (node: string) => eventually(`the leader's answer for ${node}`, async () => {
      const code = await post(node);
      return code === 503 || code === 0 ? undefined : code;
    }, 30_000);
    assert.equal(await answer(NODE1.name), 200);
    assert.equal(await answer(NODE2.name), 403);
  });

  test('metrics: Prometheus scrapes every agent and operator over the network and evaluates the chart rules', async (t) => {
    if (skip(t)) return;
    // The rules as the chart renders them for this release, the burst threshold tuned so
    // that the suite's one scan is a burst.
    const { stdout } = await cluster.helm([
      'template', RELEASE, CHART, '--namespace', NAMESPACE, '--set', 'prometheusRule.enabled=true',
      '--set', 'prometheusRule.scanBurstThreshold=0', '--show-only', 'templates/prometheusrule.yaml',
    ]);
    const groups = (parse(stdout) as { spec: { groups: unknown[] } }).spec.groups;
    await startPrometheus(
      { agents: NODES.map((n) => n.ip), operators: (await operatorPods(cluster)).map((p) => p.status.podIP!) },
      groups,
    );
    await eventually('every target up', async () => {
      const up = await query('up');
      return up.result.length === 4 && up.result.every((r) => r.value[1] === '1') ? true : undefined;
    }, 60_000);
    assert.equal((await query('count(portsentry_agent_info)')).result[0]?.value[1], '2');
    await eventually('one leader', async () => ((await query('sum(portsentry_leader)')).result[0]?.value[1] === '1' ? true : undefined), 30_000);
    // Every query of the dashboard evaluates (Grafana's variables as Grafana would fill them).
    const dashboard = JSON.parse(await readFile(join(CHART, 'files', 'dashboards', 'kube-portsentry.json'), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
    assert.ok(exprs.length > 5);
    for (const expr of exprs) {
      const concrete = expr.replace(/\$node/g, '.*').replace(/\$__range/g, '5m').replace(/\$__rate_interval/g, '1m').replace(/\$__interval/g, '15s');
      await query(concrete);
    }
    const rules = await prometheusApi<{ groups: { rules: { health: string; name: string }[] }[] }>('/api/v1/rules');
    for (const r of rules.groups.flatMap((g) => g.rules)) assert.equal(r.health, 'ok', `rule ${r.name} evaluates`);
  });

  test('detection to block: a connect scan of node 1 blocks the scanner everywhere, before kube-proxy; deleting the BlockedHost lifts it', async (t) => {
    if (skip(t)) return;
    await apply(workload(image));
    await cluster.kubectl(['-n', WORKLOAD_NS, 'rollout', 'status', 'deployment/web', '--timeout=120s'], { timeoutMs: 150_000 });
    const [web] = await pods(cluster, WORKLOAD_NS, 'app=web');
    webPodIp = web!.status.podIP!;
    assert.equal(web!.spec.nodeName, NODE2.name);
    // Before: both answer the scanner (once kube-proxy has programmed the new Service).
    await eventually('the NodePort on node 2 answers the scanner', async () => (await reach(NODE2.ip, NODE_PORT)) === 'open', 30_000);
    assert.equal(await reach(webPodIp, 8080), 'open', 'the pod on node 2 answers the scanner');

    await apply([blockingPolicy('e2e-edge', 10, { mode: 'bind', ports: TRIPWIRES })]);
    await eventually('the policy on both agents', async () => {
      const p = await cluster.json<{ status?: { conditions?: { type: string; status: string }[]; matchedNodes?: number } }>(['get', 'psp', 'e2e-edge']);
      const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.status.matchedNodes === 2;
      // Bind mode: the tripwires listen once the agent applied the policy.
      return ready && (await reach(NODE1.ip, TRIPWIRES[0]!)) === 'open' ? true : undefined;
    }, 60_000);
    await nmapConnect(NODE1.ip, TRIPWIRES);
    const bh = await eventually('a BlockedHost for the scanner', () => bhFor(SCANNER.ip), 30_000);
    assert.equal(bh.spec.source, 'detected');
    const { stdout: table } = await cluster.kubectl(['get', 'blockedhosts']);
    assert.match(table, new RegExp(SCANNER.ip.replace(/\./g, '\\.')));
    for (const node of NODES) await eventually(`${node.name} drops the scanner`, async () => (await nodeBlocked(node)).has(SCANNER.ip), 30_000);
    // Dropped in the raw prerouting hook, before kube-proxy's DNAT: the NodePort and the pod
    // on the node that saw no scan are out of the scanner's reach.
    assert.equal(await reach(NODE2.ip, NODE_PORT), 'timeout');
    assert.equal(await reach(webPodIp, 8080), 'timeout');

    await cluster.kubectl(['delete', 'blockedhost', bh.metadata.name]);
    for (const node of NODES) await eventually(`${node.name} lets the scanner in again`, async () => !(await nodeBlocked(node)).has(SCANNER.ip), 30_000);
    assert.equal(await reach(NODE2.ip, NODE_PORT), 'open');
    assert.equal(await reach(webPodIp, 8080), 'open');
  });
  test('alerts: Prometheus fires the scan-burst alert after the scan', async (t) => {
    if (skip(t)) return;
    await eventually('PortSentryScanBurst firing', async () => {
      const r = await query('ALERTS{alertname="PortSentryScanBurst",alertstate="firing"}');
      return r.result.length > 0 ? true : undefined;
    }, 60_000);
  });

  test('protected addresses: forged scans from a node, a pod, the DNS Service, the API server, the gateway or the upstream resolver block nothing', async (t) => {
    if (skip(t)) return;
    await apply([blockingPolicy('e2e-stealth', 20, { mode: 'stealth', ports: TRIPWIRES }, 'corroborated')]);
    await eventually('the stealth policy on both agents', async () => {
      const p = await cluster.json<{ status?: { conditions?: { type: string; status: string; observedGeneration?: number }[]; matchedNodes?: number } }>(['get', 'psp', 'e2e-stealth']);
      return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.status.matchedNodes === 2 ? true : undefined;
    }, 60_000);
    const coredns = (await pods(cluster, 'kube-system', 'k8s-app=kube-dns'))[0]!;
    const protectedSources = {
      'node 2': NODE2.ip,
      'pod on node 2': webPodIp,
      'CoreDNS pod': coredns.status.podIP!,
      'cluster DNS Service': DNS_SERVICE_IP,
      'API server': CONTROL_PLANE.ip,
      'default gateway': GATEWAY,
      "node's upstream resolver": UPSTREAM_DNS,
    };
    const control = '198.18.8.77';
    // The policy reached the agents once a forged probe from an unprotected source is
    // blocked; the protected sources go first, so they were judged before it.
    await eventually('a forged control probe blocked on node 1', async () => {
      for (const source of Object.values(protectedSources)) for (const port of TRIPWIRES.slice(0, 2)) await forgedSyn(source, NODE1.ip, port);
      await forgedSyn(control, NODE1.ip, TRIPWIRES[0]!);
      return (await nodeBlocked(NODE1)).has(control);
    }, 60_000);
    for (const port of TRIPWIRES.slice(0, 2)) for (const source of Object.values(protectedSources)) await forgedSyn(source, NODE2.ip, port);
    await forgedSyn(control, NODE2.ip, TRIPWIRES[0]!);
    await eventually('the control probe blocked on node 2', async () => (await nodeBlocked(NODE2)).has(control), 30_000);
    // Reported by both nodes, the forged control is corroborated into a BlockedHost: both
    // agents reach the operator.
    const bh = await eventually('a BlockedHost for the control, reported by both nodes', async () => {
      const b = await bhFor(control);
      return b?.status?.reportingNodes?.length === 2 ? b : undefined;
    }, 30_000);
    assert.deepEqual([...bh.status!.reportingNodes!].sort(), NODES.map((n) => n.name));
    for (const node of NODES) {
      const blocked = await nodeBlocked(node);
      for (const [what, address] of Object.entries(protectedSources)) assert.ok(!blocked.has(address), `${node.name} blocked the ${what} (${address})`);
    }
    for (const [what, address] of Object.entries(protectedSources)) assert.equal(await bhFor(address), undefined, `a BlockedHost for the ${what}`);
  });

  test("a pod with the runtime's default capabilities forges SYNs to both nodes: node 1's anti-spoofing drops them, nothing is blocked", async (t) => {
    if (skip(t)) return;
    // The stealth policy of the previous test accepts two nodes' word (corroborated): what
    // a pod forges to both nodes would be a BlockedHost if it reached them, as the control
    // forged from the LAN was. The address routes out by the nodes' uplink.
    const forged = '203.0.113.66';
    const targets = NODES.flatMap((n) => TRIPWIRES.slice(0, 2).map((port) => `${n.ip}:${port}`));
    const dropped = async () => {
      const { stdout } = await runProgram(['ip', 'netns', 'exec', NODE1.ns, 'nft', '-j', 'list', 'chain', 'inet', `kube_portsentry_agent_${RELEASE}`, 'antispoof']);
      return dropCounters(stdout);
    };
    const before = await dropped();
    await apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'e2e-forge' } }]);
    await apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'forge', namespace: 'e2e-forge' },
        // No securityContext: the capabilities containerd gives every container (NET_RAW among them).
        spec: { nodeName: NODE1.name, restartPolicy: 'Never', containers: [{ name: 'forge', image: 'kps.test/forge:1', imagePullPolicy: 'Never', args: [forged, ...targets] }] },
      },
    ]);
    const phase = await eventually('the forging pod ran', async () => {
      const p = await cluster.json<{ status?: { phase?: string } }>(['-n', 'e2e-forge', 'get', 'pod', 'forge']);
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p.status.phase : undefined;
    }, 60_000);
    const { stdout: log } = await cluster.kubectl(['-n', 'e2e-forge', 'logs', 'forge']);
    assert.equal(phase, 'Succeeded', `the pod could not forge: ${log}`);
    assert.equal(log.trim().split('\n').length, targets.length, log);
    await eventually("node 1's rule counted what its pod forged", async () => (await dropped()) - before >= targets.length, 15_000);
    t.diagnostic(`dropped on node 1: ${(await dropped()) - before} of ${targets.length}`);
    await eventually('Prometheus has the drops', async () => Number((await query('sum(portsentry_spoofed_packets_dropped_total)')).result[0]?.value[1] ?? 0) >= targets.length, 30_000);
    await new Promise((r) => setTimeout(r, 2000)); // a report, and any BlockedHost, would be through by now
    for (const node of NODES) assert.ok(!(await nodeBlocked(node)).has(forged), `${node.name} blocked the address a pod forged`);
    assert.equal(await bhFor(forged), undefined, 'a BlockedHost for the address a pod forged');
    await cluster.kubectl(['delete', 'namespace', 'e2e-forge', '--wait=false']);
  });

  test("DNS as the kubelet gives it: the agent holds the node's resolvers, reports without cluster DNS; CoreDNS serves the operator's name", async (t) => {
    if (skip(t)) return;
    // The agent runs with dnsPolicy Default: the kubelet writes the node's own resolv.conf
    // into the pod, and those resolvers are protected (previous test). The agent finds the
    // operator's Service in the API, so reporting never waits on cluster DNS.
    for (const agent of await agentPods(cluster)) {
      const resolv = (await cluster.kubectl(['-n', NAMESPACE, 'exec', agent.metadata.name, '--', 'cat', '/etc/resolv.conf'])).stdout;
      assert.match(resolv, new RegExp(`^nameserver ${UPSTREAM_DNS.replace(/\./g, '\\.')}$`, 'm'), `${agent.metadata.name}: the node's resolver`);
      assert.doesNotMatch(resolv, new RegExp(DNS_SERVICE_IP.replace(/\./g, '\\.')));
    }
    // Pods on the cluster network resolve the name the report endpoint's certificate carries.
    const operator = (await operatorPods(cluster))[0]!;
    const name = `${OPERATOR}.${NAMESPACE}.svc`;
    const { stdout } = await cluster.kubectl([
      '-n', NAMESPACE, 'exec', operator.metadata.name, '--', 'node', '-e', `require('node:dns').lookup(${JSON.stringify(name)}, (e, a) => console.log(e ? e.code : a))`,
    ]);
    const serviceIp = (await cluster.kubectl(['-n', NAMESPACE, 'get', 'service', OPERATOR, '-o', 'jsonpath={.spec.clusterIP}'])).stdout;
    assert.equal(stdout.trim(), serviceIp);
    const { stdout: logs } = await cluster.kubectl(['-n', 'kube-system', 'logs', 'deployment/coredns']);
    assert.match(logs, new RegExp(`"A IN ${name.replace(/\./g, '\\.')}\\.cluster\\.local\\. [^"]*" NOERROR`));
  });

  test('lifecycle: an agent pod deleted while a block is in force: the block stays in the kernel, the new pod takes over', async (t) => {
    if (skip(t)) return;
    await apply([{ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: 'e2e-scanner' }, spec: { address: SCANNER.ip, source: 'manual', reason: 'e2e' } }]);
    for (const node of NODES) await eventually(`${node.name} drops the scanner`, async () => (await nodeBlocked(node)).has(SCANNER.ip), 30_000);
    const old = (await agentPods(cluster)).find((p) => p.spec.nodeName === NODE2.name)!;
    await cluster.kubectl(['-n', NAMESPACE, 'delete', 'pod', old.metadata.name, '--wait=false']);
    // Until the new pod is Ready, and after: still blocked, still out of reach. The kernel is
    // sampled apart from the slower polling of the pods, so a loaded machine still samples the
    // gap between the two agents.
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        assert.ok((await nodeBlocked(NODE2)).has(SCANNER.ip), 'the block stayed in the kernel');
        assert.equal(await reach(NODE2.ip, NODE_PORT, 500), 'timeout');
        samples++;
      }
    })();
    sampler.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
    try {
      await eventually('a new Ready agent on node 2', async () => {
        const now = (await agentPods(cluster)).find((p) => p.spec.nodeName === NODE2.name);
        return now && now.metadata.name !== old.metadata.name && now.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      }, 120_000);
    } finally {
      sampling = false;
      await sampler;
    }
    assert.ok(samples > 1, `${samples} sample(s) of the kernel while the agent was replaced`);
    assert.ok((await nodeBlocked(NODE2)).has(SCANNER.ip));
    // The new pod enforces: a BlockedHost made now reaches node 2.
    await apply([{ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: 'e2e-after-restart' }, spec: { address: '198.18.8.201', source: 'manual', reason: 'e2e' } }]);
    await eventually('the new agent enforces a new BlockedHost', async () => (await nodeBlocked(NODE2)).has('198.18.8.201'), 30_000);
  });

  test('lifecycle: deleting the leader pod fails over, and the new leader acts', async (t) => {
    if (skip(t)) return;
    const lease = async () => (await cluster.json<Lease>(['-n', NAMESPACE, 'get', 'lease', 'kube-portsentry-operator'])).spec.holderIdentity;
    const leader = (await lease())!;
    const started = Date.now();
    await cluster.kubectl(['-n', NAMESPACE, 'delete', 'pod', leader, '--wait=false']);
    const next = await eventually('another leader', async () => {
      const holder = await lease();
      return holder && holder !== leader && (await operatorPods(cluster)).some((p) => p.metadata.name === holder) ? holder : undefined;
    }, 90_000);
    process.stdout.write(`# leader ${leader} -> ${next} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    // A policy edit is reconciled by the new leader: its status catches up with the edit.
    await cluster.kubectl(['patch', 'psp', 'e2e-stealth', '--type=merge', '-p', JSON.stringify({ spec: { tcp: { ports: [...TRIPWIRES, 7777] } } })]);
    await eventually('the edit reconciled', async () => {
      const p = await cluster.json<{ metadata: { generation: number }; status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] } }>(['get', 'psp', 'e2e-stealth']);
      return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True' && c.observedGeneration === p.metadata.generation);
    }, 60_000);
  });

  test('lifecycle: helm upgrade of a value rolls both components without losing a block', async (t) => {
    if (skip(t)) return;
    const before = new Set([...(await agentPods(cluster)), ...(await operatorPods(cluster))].map((p) => p.metadata.name));
    await cluster.helm(['upgrade', RELEASE, CHART, '--namespace', NAMESPACE, '--reuse-values', '--set', 'agent.logLevel=debug', '--set', 'operator.logLevel=debug']);
    const rollouts = Promise.all([
      cluster.kubectl(['-n', NAMESPACE, 'rollout', 'status', `daemonset/${AGENT}`, '--timeout=300s'], { timeoutMs: 320_000 }),
      cluster.kubectl(['-n', NAMESPACE, 'rollout', 'status', `deployment/${OPERATOR}`, '--timeout=300s'], { timeoutMs: 320_000 }),
    ]);
    let done = false;
    void rollouts.then(() => (done = true), () => (done = true));
    let samples = 0;
    while (!done) {
      for (const node of NODES) assert.ok((await nodeBlocked(node)).has(SCANNER.ip), `${node.name} kept the block during the rollout`);
      samples++;
    }
    await rollouts;
    assert.ok(samples > 1, 'sampled during the rollout');
    const after = [...(await agentPods(cluster)), ...(await operatorPods(cluster))];
    assert.equal(after.length, 4);
    for (const p of after) assert.ok(!before.has(p.metadata.name), `${p.metadata.name} was replaced`);
    for (const node of NODES) assert.ok((await nodeBlocked(node)).has(SCANNER.ip));
    assert.equal(await reach(NODE2.ip, NODE_PORT), 'timeout');
  });

  test('lifecycle: helm uninstall leaves on the nodes what the README says, cleanup removes it, and the CRDs follow crds.keep', async (t) => {
    if (skip(t)) return;
    await cluster.helm(['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait']);
    await eventually('no agent or operator pod left', async () => (await agentPods(cluster)).length + (await operatorPods(cluster)).length === 0, 120_000);
    const table = `kube_portsentry_agent_${RELEASE}`;
    for (const node of NODES) {
      const { stdout: tables } = await runProgram(['ip', 'netns', 'exec', node.ns, 'nft', 'list', 'tables']);
      const ours = tables.split('\n').filter((l) => l.includes('kube_portsentry'));
      assert.deepEqual(ours, [`table inet ${table}`], `${node.name}: the release's table stays, nothing else of ours`);
      // Every entry the agent wrote expires by itself within 24 h.
      const { stdout } = await runProgram(['ip', 'netns', 'exec', node.ns, 'nft', '-j', 'list', 'table', 'inet', table], { maxOutputBytes: 64 << 20 });
      const elems = (JSON.parse(stdout) as { nftables: { set?: { name: string; elem?: { elem?: { timeout?: number; expires?: number } }[] } }[] }).nftables
        .flatMap((o) => o.set?.elem ?? []);
      assert.ok(elems.length > 0, `${node.name}: blocks were in force at uninstall`);
      for (const e of elems) {
        assert.ok(e.elem && e.elem.timeout !== undefined && e.elem.timeout <= 86_400, `${node.name}: an entry without a timeout of at most 24 h: ${JSON.stringify(e)}`);
      }
      for (const family of ['-4', '-6']) {
        const { stdout: routes } = await runProgram(['ip', '-n', node.ns, family, 'route', 'show', 'table', 'all', 'type', 'blackhole']);
        assert.equal(routes.trim(), '', `${node.name}: no blackhole route`);
      }
      // The documented step, as root on the node: cleanup removes the release's state at once.
      await runProgram(['ip', 'netns', 'exec', node.ns, process.execPath, join(REPO, 'dist/src/cli.js'), 'cleanup', '--instance', RELEASE], { timeoutMs: 60_000 });
      const { stdout: after } = await runProgram(['ip', 'netns', 'exec', node.ns, 'nft', 'list', 'tables']);
      assert.doesNotMatch(after, /kube_portsentry/, `${node.name}: cleanup removed the table`);
      assert.match(after, /kube-proxy/, `${node.name}: and nothing of kube-proxy's`);
    }
    // crds.keep (default true): the CRDs stay, and with them the policies and BlockedHosts.
    const crds = ['portsentrypolicies.kube-portsentry.io', 'blockedhosts.kube-portsentry.io'];
    for (const crd of crds) await cluster.kubectl(['get', 'crd', crd]);
    assert.ok(await bhFor(SCANNER.ip), 'the manual BlockedHost is still there');
    // Installed with crds.keep=false, an uninstall takes the CRDs along.
    await cluster.helm(['install', RELEASE, CHART, '--namespace', NAMESPACE, '--set', 'image.pullPolicy=Never', '--set', 'crds.keep=false', '--wait', '--timeout', '3m']);
    await cluster.helm(['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait']);
    for (const crd of crds) await eventually(`${crd} deleted`, async () => cluster.kubectl(['get', 'crd', crd]).then(() => false, () => true), 60_000);
  });

});
