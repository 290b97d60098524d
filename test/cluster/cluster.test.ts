// The operator and three agents as real processes against a real API server: each agent
// in a network namespace of its own standing for a node, one scanner reaching all three.
// Policies go in with kubectl; scans are real (nmap, hping3); blocks are read from each
// node's nftables set and proven by connections that no longer get an answer.
import assert from 'node:assert/strict';
import { createSign } from 'node:crypto';
import { chmod, chown, copyFile, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { AGENT_TABLE, eventually, prepareAgentApi, scannerAddress, SCANNER, selfSignedCertificate, TestCluster, type TestNode } from '../../support/cluster.js';
import { freePort } from '../../support/free-port.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { missingPrerequisites } from '../../support/prereq.js';
import { capabilityMask, privilegesOf, type Privileges } from '../../support/privilege.js';
import type { BlockedHostObject, PolicyObject } from '../../src/k8s/objects.js';
import type { SentryProcess } from '../../support/sentry-process.js';

const NS = 'kube-portsentry';
const API_ADVERTISED = '198.18.0.100';
const SERVICE_PORT = 8080;
const AGENT_METRICS = 9109;
// What the chart's securityContexts grant (templates/agent-daemonset.yaml, operator-deployment.yaml):
// the agent is uid 0 with NET_RAW and NET_ADMIN only; the operator uid 10001 with nothing.
const AGENT_PRIVILEGES: Privileges = { capabilities: ['NET_RAW', 'NET_ADMIN'] };
const OPERATOR_PRIVILEGES: Privileges = { capabilities: [], uid: 10001, gid: 10001 };

const policy = (ports: number[]) => `
apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: e2e
spec:
  nodeSelector:
    matchLabels:
      e2e: "yes"
  tcp:
    mode: stealth
    ports: [${ports.join(', ')}]
  udp:
    mode: "off"
  trigger:
    count: 2
    window: 10m
  response:
    tcp: block
    scope: cluster
    # This suite tests propagation and faults: one node's stealth detection counts
    # cluster-wide (test/cluster/trust.test.ts and test/k8s/one-node.test.ts cover the
    # default, a handshake seen by any node).
    clusterEvidence: singleNode
    duration: 10m
`;

describe('operator and three agents', { concurrency: false }, () => {
  const why = missingPrerequisites({ root: true, tools: ['nft', 'nmap', 'hping3', 'openssl', 'go', 'capsh'] });
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  const state = useControlPlane(undefined, { advertiseAddress: API_ADVERTISED });
  let cluster: TestCluster;
  let cp: ControlPlane;
  let tokenFile: string;
  let agentArgs: string[];
  const opPorts: number[] = [];
  const opMetrics: number[] = [];
  let operatorArgs: (i: number) => string[];

  const skip = () => why.length > 0 || !state.cp;

  before(async () => {
    if (skip()) return;
    cp = state.cp!;
    const token = await prepareAgentApi(cp, NS);

    cluster = await TestCluster.create(3);
    tokenFile = await cluster.writeFile('token', token);
    for (const node of cluster.nodes) {
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: { e2e: 'yes' } } }),
      });
      await cp.kubectl([
        'patch', 'node', node.name, '--subresource=status', '--type=merge',
        '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: node.v4 }, { type: 'InternalIP', address: node.v6 }] } }),
      ]);
    }
    // The operator's report endpoint serves TLS with a certificate for 127.0.0.1.
    const { cert, key } = await selfSignedCertificate(cluster.dir, 'tls');
    // The operator runs as uid 10001 without DAC_OVERRIDE: it gets its own copies of what it reads.
    const kubeconfig = `${cluster.dir}/operator.kubeconfig`;
    await copyFile(cp.kubeconfig, kubeconfig);
    for (const file of [key, kubeconfig]) await chown(file, OPERATOR_PRIVILEGES.uid!, OPERATOR_PRIVILEGES.gid!);
    await chmod(cluster.dir, 0o755);
    for (let i = 0; i < 2; i++) {
      opPorts.push(await freePort());
      opMetrics.push(await freePort());
    }
    operatorArgs = (i) => [
      '--namespace', NS, '--identity', `operator-${i}`, '--kubeconfig', kubeconfig,
      '--listen-address', `127.0.0.1:${opPorts[i]}`, '--tls-cert', cert, '--tls-key', key,
      '--metrics-address', `127.0.0.1:${opMetrics[i]}`, '--lease-duration', '3s',
      '--network-policy-namespaces', 'default', '--log-level', 'debug',
      // One token (from kubectl create token, bound to no pod) serves the three agents.
      '--allow-unbound-tokens',
    ];
    cluster.startOperator(operatorArgs(0), OPERATOR_PRIVILEGES);
    cluster.startOperator(operatorArgs(1), OPERATOR_PRIVILEGES);
    const apiPort = Number(new URL(cp.url).port);
    await cluster.forwardLoopback([apiPort, ...opPorts]);
    agentArgs = [
      '--namespace', NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile, '--operator-ca', cert,
      '--operator-url', opPorts.map((p) => `https://127.0.0.1:${p}`).join(','),
      '--firewall', 'nftables', '--metrics-address', `127.0.0.1:${AGENT_METRICS}`, '--report-interval', '50ms', '--log-level', 'debug',
    ];
    await cluster.services(SERVICE_PORT);
    for (const node of cluster.nodes) await cluster.startAgent(node, agentArgs, AGENT_PRIVILEGES);
  });

  after(async () => {
    await cluster?.destroy();
  });

  const dumpLogs = (): string =>
    [...cluster.operators, ...cluster.nodes.map((n) => n.agent).filter((a): a is SentryProcess => !!a)]
      .map((p, i) => `--- process ${i}\n${p.lines.slice(-40).map((l) => JSON.stringify(l)).join('\n')}\n${p.stderr.join('').slice(-2000)}`)
      .join('\n');

  const blockedEverywhere = (address: string, nodes: TestNode[] = cluster.nodes) =>
    eventually(`${address} in every node set`, async () => {
      for (const n of nodes) if (!(await cluster.nodeSet(n)).has(address)) return false;
      return true;
    });

  const bhFor = async (address: string): Promise<BlockedHostObject | undefined> => {
    const list = JSON.parse((await cp.kubectl(['get', 'blockedhosts', '-o', 'json'])).stdout) as { items: BlockedHostObject[] };
    return list.items.find((b) => b.spec.address === address);
  };

  const watchedPorts = async (node: TestNode): Promise<number> => {
    const text = await cluster.agentMetrics(node, AGENT_METRICS);
    const m = /portsentry_watched_ports\{protocol="tcp",mode="stealth"\} (\d+)/.exec(text);
    return m ? Number(m[1]) : -1;
  };

  const leaderIndex = async (): Promise<number> => {
    const lease = JSON.parse((await cp.kubectl(['get', 'lease', '-n', NS, 'kube-portsentry-operator', '-o', 'json'])).stdout) as { spec: { holderIdentity: string } };
    return Number(lease.spec.holderIdentity.replace('operator-', ''));
  };

  /** More scanner addresses, for scenarios that need fresh sources of their own. */
  const scannerAddresses = async (first: number, count: number): Promise<string[]> => {
    const out = Array.from({ length: count }, (_, i) => `198.18.0.${first + i}`);
    for (const a of out) await cluster.exec(cluster.scanner, ['ip', 'addr', 'replace', `${a}/24`, 'dev', 'eth0']);
    return out;
  };

  /**
   * Every node enforces exactly the BlockedHosts: each BlockedHost address is in every node's
   * set, and every entry the agents added for the cluster has its BlockedHost. (Entries of the
   * node's own detections are tagged local and expire on their own timer.)
   */
  const converged = async (): Promise<true | false> => {
    const list = JSON.parse((await cp.kubectl(['get', 'blockedhosts', '-o', 'json'])).stdout) as { items: BlockedHostObject[] };
    const addresses = list.items.map((b) => b.spec.address).filter((a) => !a.includes('/'));
    assert.equal(new Set(addresses).size, addresses.length, `one BlockedHost per address: ${addresses.join(' ')}`);
    for (const n of cluster.nodes) {
      const set = await cluster.nodeSet(n);
      if (addresses.some((a) => !set.has(a))) return false;
      if ([...set].some(([a, tag]) => tag === 'cluster' && !addresses.includes(a))) return false;
    }
    return true;
  };

  const restartExitedOperators = (): number => {
    let restarted = 0;
    for (let i = 0; i < 2; i++)
      if (cluster.operators[i]!.child.exitCode !== null || cluster.operators[i]!.child.signalCode !== null) {
        // As the kubelet would: the Deployment's pod restarts.
        cluster.startOperator(operatorArgs(i), OPERATOR_PRIVILEGES, i);
        restarted++;
      }
    return restarted;
  };

  /** POSTs a report body to the leader's endpoint as the given bearer token; resolves with the status. */
  const postReport = async (token: string | null, body: string): Promise<number> => {
    const port = opPorts[await leaderIndex()]!;
    const ca = await readFile(`${cluster.dir}/tls.crt`, 'utf8');
    return new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        `https://127.0.0.1:${port}/v1/reports`,
        { method: 'POST', ca, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  };

  test('a policy applied with kubectl reaches every agent, and an edit changes them within seconds', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    await cp.kubectl(['apply', '-f', '-'], { input: policy([1, 11, 15, 79, 111]) });
    for (const node of cluster.nodes) await eventually(`${node.name} watches 5 ports`, async () => (await watchedPorts(node)) === 5);
    const status = JSON.parse((await cp.kubectl(['get', 'psp', 'e2e', '-o', 'json'])).stdout) as PolicyObject;
    assert.equal(status.status?.matchedNodes, 3);
    assert.equal(status.status?.conditions?.[0]?.reason, 'Applied');
    await cp.kubectl(['apply', '-f', '-'], { input: policy([1, 11, 15, 79, 111, 2222]) });
    const started = Date.now();
    for (const node of cluster.nodes) await eventually(`${node.name} watches 6 ports`, async () => (await watchedPorts(node)) === 6);
    t.diagnostic(`policy edit in force on 3 agents after ${Date.now() - started} ms`);
  });

  test('least privilege: agents hold only NET_RAW and NET_ADMIN, operators run as uid 10001 with none', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const agentMask = capabilityMask(AGENT_PRIVILEGES.capabilities);
    for (const node of cluster.nodes) {
      const p = await privilegesOf(node.agent!.child.pid!);
      assert.equal(p.uid, 0, `${node.name} agent uid`);
      assert.equal(p.effective, agentMask, `${node.name} agent CapEff ${p.effective.toString(16)}`);
      assert.equal(p.bounding, agentMask, `${node.name} agent CapBnd ${p.bounding.toString(16)}`);
    }
    for (const operator of cluster.operators.filter((o) => o.child.exitCode === null)) {
      const p = await privilegesOf(operator.child.pid!);
      assert.equal(p.uid, OPERATOR_PRIVILEGES.uid);
      assert.equal(p.effective | p.permitted | p.bounding, 0n, 'the operator holds a capability');
    }
    // Everything else in this suite (detection, blocks, reports, leader election) runs so.
  });

  test('nmap against node 1: a BlockedHost appears and nodes 2 and 3 block the scanner too', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
    assert.equal(await cluster.connect(SCANNER, n2.v4, SERVICE_PORT), 'open');
    const started = Date.now();
    await cluster.exec(cluster.scanner, ['nmap', '-sS', '-Pn', '-n', '-p', '1,11,15,79,111', n1.v4]);
    const bh = await eventually('BlockedHost for the scanner', () => bhFor(SCANNER)).catch((err) => {
      throw new Error(`${(err as Error).message}\n${dumpLogs()}`);
    });
    await blockedEverywhere(SCANNER);
    t.diagnostic(`scan to block on all 3 nodes: ${Date.now() - started} ms`);
    assert.equal(bh.spec.source, 'detected');
    assert.equal(bh.spec.policy, 'e2e');
    await eventually('status with ports', async () => ((await bhFor(SCANNER))?.status?.ports?.length ?? 0) >= 3);
    for (const n of [n2, n3]) assert.equal(await cluster.connect(SCANNER, n.v4, SERVICE_PORT), 'timeout', `${n.name} still answers`);
    // Events for kubectl describe: on the BlockedHost, with the nodes that saw the scan.
    await eventually('Events', async () => {
      const events = JSON.parse((await cp.kubectl(['get', 'events', '-n', 'default', '-o', 'json'])).stdout) as {
        items: { reason: string; involvedObject: { kind: string; name: string } }[];
      };
      const on = (kind: string, name: string, reason: string) =>
        events.items.some((e) => e.involvedObject.kind === kind && e.involvedObject.name === name && e.reason === reason);
      return on('BlockedHost', bh.metadata.name, 'Blocked') && on('BlockedHost', bh.metadata.name, 'ScanDetected');
    });
    // kubectl get blockedhosts shows it on its own.
    const table = (await cp.kubectl(['get', 'blockedhosts'])).stdout;
    assert.match(table, new RegExp(`${SCANNER.replace(/\./g, '\\.')}\\s+detected`));
  });

  test('one port on each node, below every node trigger, is caught by the cluster-wide trigger', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const source = scannerAddress(2);
    const ports = [79, 11, 15];
    for (const [i, n] of cluster.nodes.entries()) await cluster.connect(source, n.v4, ports[i]!, 500);
    const bh = await eventually('cluster-wide BlockedHost', () => bhFor(source)).catch((err) => {
      throw new Error(`${(err as Error).message}\n${dumpLogs()}`);
    });
    assert.match(bh.spec.reason ?? '', /cluster-wide trigger/);
    await eventually('status lists three nodes', async () => ((await bhFor(source))?.status?.reportingNodes?.length ?? 0) === 3);
    await blockedEverywhere(source);
    assert.equal(await cluster.connect(source, cluster.nodes[0]!.v4, SERVICE_PORT), 'timeout');
  });

  test('kubectl delete unblocks everywhere; a manual BlockedHost blocks everywhere; expiry lifts it', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const source = scannerAddress(2);
    const bh = (await bhFor(source))!;
    await cp.kubectl(['delete', 'blockedhost', bh.metadata.name]);
    await eventually('unblocked everywhere', async () => {
      for (const n of cluster.nodes) if ((await cluster.nodeSet(n)).has(source)) return false;
      return true;
    });
    assert.equal(await cluster.connect(source, cluster.nodes[2]!.v4, SERVICE_PORT), 'open');

    // A source that node 1's own trigger blocked as well: deleting its BlockedHost lifts node
    // 1's own block too (the real-cluster suite found it left in place for the policy's duration).
    const local = scannerAddress(6);
    for (const port of [79, 11, 15]) await cluster.connect(local, cluster.nodes[0]!.v4, port, 500);
    const localBh = await eventually('a BlockedHost for a source node 1 blocked itself', () => bhFor(local));
    await blockedEverywhere(local);
    await cp.kubectl(['delete', 'blockedhost', localBh.metadata.name]);
    await eventually('unblocked everywhere, node 1 included', async () => {
      for (const n of cluster.nodes) if ((await cluster.nodeSet(n)).has(local)) return false;
      return true;
    });
    assert.equal(await cluster.connect(local, cluster.nodes[0]!.v4, SERVICE_PORT), 'open');

    const manual = scannerAddress(3);
    const expiresAt = new Date(Date.now() + 6000).toISOString().replace(/\.\d+Z$/, 'Z');
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'BlockedHost',
        metadata: { name: 'manual-test' },
        spec: { address: manual, reason: 'test', expiresAt },
      }),
    });
    await blockedEverywhere(manual);
    assert.equal(await cluster.connect(manual, cluster.nodes[1]!.v4, SERVICE_PORT), 'timeout');
    await eventually(
      'expired everywhere',
      async () => {
        for (const n of cluster.nodes) if ((await cluster.nodeSet(n)).has(manual)) return false;
        return true;
      },
      15_000,
    );
    assert.equal(await cluster.connect(manual, cluster.nodes[1]!.v4, SERVICE_PORT), 'open');
    // Manual blocks are never deleted by the operator, even past their expiry.
    assert.ok(await bhFor(manual));
    await cp.kubectl(['delete', 'blockedhost', 'manual-test']);
  });

  test('spoofed scans with a node or the API server as source never block that address', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster.nodes as [TestNode, TestNode];
    for (const spoofed of [n2.v4, API_ADVERTISED]) {
      for (const port of [1, 11, 15, 79])
        await cluster.exec(cluster.scanner, ['hping3', '-S', '-c', '1', '-a', spoofed, '-p', String(port), n1.v4]).catch(() => undefined);
    }
    // A real scan afterwards proves the agent was listening all along.
    const control = scannerAddress(4);
    for (const port of [1, 11, 15, 79]) await cluster.connect(control, n1.v4, port, 300);
    await eventually('control scan blocked', () => bhFor(control));
    for (const spoofed of [n2.v4, API_ADVERTISED]) {
      assert.equal(await bhFor(spoofed), undefined, `${spoofed} got a BlockedHost`);
      for (const n of cluster.nodes) assert.ok(!(await cluster.nodeSet(n)).has(spoofed), `${spoofed} blocked on ${n.name}`);
    }
  });

  test('the NetworkPolicy output passes the API server and lists the blocked addresses', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    let last = '';
    const np = await eventually('NetworkPolicy with the scanner', async () => {
      const r = await cp.kubectl(['get', 'networkpolicy', '-n', 'default', 'kube-portsentry-blocked', '-o', 'json']).catch(() => null);
      if (!r) return undefined;
      last = r.stdout;
      const doc = JSON.parse(r.stdout) as { spec: { ingress: { from: { ipBlock: { cidr: string; except?: string[] } }[] }[] } };
      return doc.spec.ingress[0]!.from[0]!.ipBlock.except?.includes(`${SCANNER}/32`) ? doc : undefined;
    }).catch((err) => {
      throw new Error(`${(err as Error).message}\nlast seen: ${last}\n${dumpLogs()}`);
    });
    assert.equal(np.spec.ingress[0]!.from[1]!.ipBlock.cidr, '::/0');
  });

  test('the report endpoint turns away bad tokens and bad bodies, and changes nothing then', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const post = postReport;
    await cp.kubectl(['create', 'serviceaccount', '-n', NS, 'someone-else']);
    const token = (sa: string, audience: string) =>
      cp.kubectl(['create', 'token', '-n', NS, sa, '--audience', audience, '--duration', '10m']).then((r) => r.stdout.trim());
    const agentToken = (await readFile(tokenFile, 'utf8')).trim();
    // The agent's own token, expired an hour ago and signed again with the API server's key.
    const expired = async (jwt: string): Promise<string> => {
      const [header, payload] = jwt.split('.') as [string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      const now = Math.floor(Date.now() / 1000);
      const body64 = Buffer.from(JSON.stringify({ ...claims, iat: now - 7200, nbf: now - 7200, exp: now - 3600 })).toString('base64url');
      const signature = createSign('RSA-SHA256').update(`${header}.${body64}`).sign(await readFile(`${cp.dir}/sa.key`, 'utf8'), 'base64url');
      return `${header}.${body64}.${signature}`;
    };
    const forged = { node: 'node-1', policy: 'e2e', sources: [{ source: '198.18.0.77', probes: [1, 2, 3, 4].map((p) => ({ protocol: 'tcp', port: p, type: 'syn', time: Date.now() })), count: 4, firstSeen: Date.now(), lastSeen: Date.now(), verified: true, blocked: true }] };
    const body = JSON.stringify(forged);
    const before = (await cp.kubectl(['get', 'blockedhosts', '-o', 'name'])).stdout;
    assert.equal(await post(null, body), 401, 'no token');
    assert.equal(await post('not-a-token', body), 401, 'garbage token');
    assert.equal(await post(cp.adminToken, body), 401, 'a token without our audience');
    assert.equal(await post(await token('kube-portsentry-agent', 'some-other-audience'), body), 401, 'wrong audience');
    assert.equal(await post(await token('someone-else', 'kube-portsentry'), body), 403, 'another service account');
    assert.equal(await post(await expired(agentToken), body), 401, 'expired');
    assert.equal(await post(agentToken, '{"node": "node-1", "policy": "e2e", "sources": [{"source": "not an ip"}]}'), 400, 'malformed');
    assert.equal(await post(agentToken, '{'), 400, 'not JSON');
    assert.equal(await post(agentToken, JSON.stringify({ ...forged, pad: 'x'.repeat(1_100_000) })), 413, 'oversize');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await cp.kubectl(['get', 'blockedhosts', '-o', 'name'])).stdout, before, 'a rejected report changed state');
    // The same report with the agent's token is accepted.
    assert.equal(await post(agentToken, body), 200);
    await eventually('accepted report makes a BlockedHost', () => bhFor('198.18.0.77'));
  });

  test('kill the leader: the other operator takes over and the next scan is still blocked everywhere', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const lease = JSON.parse((await cp.kubectl(['get', 'lease', '-n', NS, 'kube-portsentry-operator', '-o', 'json'])).stdout) as { spec: { holderIdentity: string } };
    const leader = Number(lease.spec.holderIdentity.replace('operator-', ''));
    cluster.operators[leader]!.child.kill('SIGKILL');
    const killed = Date.now();
    await eventually('new leader', async () => {
      const l = JSON.parse((await cp.kubectl(['get', 'lease', '-n', NS, 'kube-portsentry-operator', '-o', 'json'])).stdout) as { spec: { holderIdentity: string } };
      return l.spec.holderIdentity === `operator-${1 - leader}`;
    });
    t.diagnostic(`failover after ${Date.now() - killed} ms (lease 3 s)`);
    const source = scannerAddress(5);
    await cluster.exec(cluster.scanner, ['nmap', '-sS', '-Pn', '-n', '-S', source, '-e', 'eth0', '-p', '1,11,15,79', cluster.nodes[1]!.v4]);
    await eventually('BlockedHost after failover', () => bhFor(source));
    await blockedEverywhere(source);
    // Bring the killed replica back for the rest of the suite.
    restartExitedOperators();
  });

  test('kill an agent and restart it: its node set is rebuilt from the API with nothing lost or leaked', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const n3 = cluster.nodes[2]!;
    const before = await cluster.nodeSet(n3);
    assert.ok(before.has(SCANNER));
    n3.agent!.child.kill('SIGKILL');
    await n3.agent!.exited;
    // While it is down: one block deleted, one created, and a stray entry in its set.
    const gone = (await bhFor(scannerAddress(4)))!;
    await cp.kubectl(['delete', 'blockedhost', gone.metadata.name]);
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: 'while-down' }, spec: { address: '2001:db8::99' } }),
    });
    await cluster.exec(n3.ns, ['nft', 'add', 'element', 'inet', AGENT_TABLE, 'blocked4', '{ 198.18.0.250 comment "cluster" }']);
    // The blocks stayed in the kernel while the agent was down.
    assert.ok((await cluster.nodeSet(n3)).has(SCANNER));
    await cluster.startAgent(n3, agentArgs, AGENT_PRIVILEGES);
    const after = await cluster.nodeSet(n3);
    assert.ok(after.has(SCANNER), 'a block in force was lost');
    assert.ok(after.has('2001:db8::99'), 'the block made while down is missing');
    assert.ok(!after.has(scannerAddress(4)), 'the block deleted while down is still there');
    assert.ok(!after.has('198.18.0.250'), 'a stray entry leaked');
    await cp.kubectl(['delete', 'blockedhost', 'while-down']);
  });
  test('kill -9 an agent mid-scan: the restarted agent still catches the scan, blocked everywhere once', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const n3 = cluster.nodes[2]!;
    const [source] = (await scannerAddresses(150, 1)) as [string];
    // One probe a second, so the agent dies after the first and is back before the last.
    const scan = cluster.exec(cluster.scanner, [
      'nmap', '-sS', '-Pn', '-n', '-S', source, '-e', 'eth0', '--scan-delay', '1s', '--max-retries', '0', '-p', '1,11,15,79,111,2222', n3.v4,
    ]);
    await new Promise((r) => setTimeout(r, 700));
    n3.agent!.child.kill('SIGKILL');
    await n3.agent!.exited;
    await cluster.startAgent(n3, agentArgs, AGENT_PRIVILEGES);
    await scan;
    await eventually('BlockedHost for the scan interrupted by the crash', () => bhFor(source), 20_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${dumpLogs()}`);
    });
    await blockedEverywhere(source);
    await eventually('every node enforces exactly the BlockedHosts', converged);
  });

  test('kill -9 the leader mid-reconcile: a policy edit and a burst of detections all land, once each', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const sources = await scannerAddresses(160, 12);
    const leader = await leaderIndex();
    const n1 = cluster.nodes[0]!;
    const known = new Set((JSON.parse((await cp.kubectl(['get', 'blockedhosts', '-o', 'json'])).stdout) as { items: BlockedHostObject[] }).items.map((b) => b.spec.address));
    await cp.kubectl(['apply', '-f', '-'], { input: policy([1, 11, 15, 79, 111, 2222, 3333]) });
    // nmap resends a probe that got no answer, so a SYN lost under this load still arrives.
    const scans = Promise.all(
      sources.map((s) => cluster.exec(cluster.scanner, ['nmap', '-sS', '-Pn', '-n', '-S', s, '-e', 'eth0', '--max-retries', '3', '-p', '1,11,15', n1.v4])),
    );
    // Kill it once the first of the burst's BlockedHosts is written: the rest are under way.
    await eventually('the first BlockedHost of the burst', async () => {
      const list = JSON.parse((await cp.kubectl(['get', 'blockedhosts', '-o', 'json'])).stdout) as { items: BlockedHostObject[] };
      return list.items.some((b) => sources.includes(b.spec.address) && !known.has(b.spec.address));
    });
    cluster.operators[leader]!.child.kill('SIGKILL');
    await scans;
    await eventually('the other operator leads', async () => (await leaderIndex()) === 1 - leader);
    for (const s of sources)
      await eventually(`BlockedHost for ${s}`, () => bhFor(s), 20_000).catch(async (err) => {
        const set = [...(await cluster.nodeSet(n1)).keys()].join(' ');
        const lines = cluster.operators.concat(n1.agent!).flatMap((p) => p.lines.filter((l) => JSON.stringify(l).includes(s) || /report/.test(l.msg)));
        throw new Error(`${(err as Error).message}\nnode-1 set: ${set}\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
      });
    for (const node of cluster.nodes) await eventually(`${node.name} watches 7 ports`, async () => (await watchedPorts(node)) === 7);
    await eventually('every node enforces exactly the BlockedHosts', converged);
    restartExitedOperators();
  });

  test('the API server down for 30 s: nodes keep blocking, and everything converges after it returns', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const [n1, n2] = cluster.nodes as [TestNode, TestNode];
    const [during, manual] = (await scannerAddresses(180, 2)) as [string, string];
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: 'outage-manual' }, spec: { address: manual } }),
    });
    await blockedEverywhere(manual);
    const down = Date.now();
    await cp.stopApiServer();
    // During the outage a node still detects and blocks on its own, and blocks in force stay.
    await cluster.exec(cluster.scanner, ['nmap', '-sS', '-Pn', '-n', '-S', during, '-e', 'eth0', '-p', '1,11,15,79', n2.v4]);
    await eventually(`${during} blocked on ${n2.name} while the API server is down`, async () => (await cluster.nodeSet(n2)).has(during));
    for (const n of cluster.nodes) assert.ok((await cluster.nodeSet(n)).has(manual), `${n.name} lost a block during the outage`);
    assert.equal(await cluster.connect(manual, n1.v4, SERVICE_PORT), 'timeout');
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - down))));
    await cp.startApiServer();
    const back = Date.now();
    const restarted = restartExitedOperators();
    t.diagnostic(`API server down ${back - down} ms; operators that exited on losing the lease and were restarted: ${restarted}`);
    for (const n of cluster.nodes) assert.equal(n.agent!.child.exitCode, null, `${n.name} agent died during the outage`);
    await eventually('the detection made during the outage reaches the API', () => bhFor(during), 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${dumpLogs()}`);
    });
    await blockedEverywhere(during);
    // Watches are back: a deletion now reaches every node.
    await cp.kubectl(['delete', 'blockedhost', 'outage-manual']);
    await eventually('the deleted block lifted everywhere', async () => {
      for (const n of cluster.nodes) if ((await cluster.nodeSet(n)).has(manual)) return false;
      return true;
    }, 60_000);
    await eventually('every node enforces exactly the BlockedHosts', converged, 60_000);
    t.diagnostic(`converged ${Date.now() - back} ms after the API server returned`);
  });
});
