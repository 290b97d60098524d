// An agent's policy over its life, with the operator and the API server for real: bind-mode
// tripwires still catch connects on every port after a policy edit, and a policy that
// cannot start is retried, with /readyz and the policy's status saying why detection is off.
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { eventually, prepareAgentApi, scannerAddress, selfSignedCertificate, TestCluster, type TestNode } from '../../support/cluster.js';
import { freePort } from '../../support/free-port.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { missingPrerequisites } from '../../support/prereq.js';
import type { Privileges } from '../../support/privilege.js';
import type { PolicyObject } from '../../src/k8s/objects.js';

const NS = 'kube-portsentry';
const METRICS = 9109;
const PORTS = [40101, 40102, 40103, 40104, 40105, 40106, 40107, 40108];
const FULL: Privileges = { capabilities: ['NET_RAW', 'NET_ADMIN'] };
// No NET_RAW: a raw-socket mode cannot start.
const NO_RAW: Privileges = { capabilities: ['NET_ADMIN'] };

const policy = (name: string, node: string, tcp: string) => `
apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: ${name}
spec:
  nodeSelector:
    matchLabels:
      robust: ${node}
  tcp: ${tcp}
  udp:
    mode: "off"
  trigger:
    count: 255
    window: 10m
  response:
    tcp: alert
    scope: cluster
`;

describe('agent policy lifecycle', { concurrency: false }, () => {
  const why = missingPrerequisites({ root: true, tools: ['nft', 'openssl', 'go', 'capsh', 'hping3'] });
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  const state = useControlPlane();
  let cluster: TestCluster;
  let cp: ControlPlane;
  let bindNode: TestNode;
  let noRawNode: TestNode;
  const skip = () => why.length > 0 || !state.cp;

  before(async () => {
    if (skip()) return;
    cp = state.cp!;
    const token = await prepareAgentApi(cp, NS);
    cluster = await TestCluster.create(2);
    [bindNode, noRawNode] = cluster.nodes as [TestNode, TestNode];
    for (const [node, label] of [[bindNode, 'bind'], [noRawNode, 'noraw']] as const)
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: { robust: label } } }),
      });
    const tokenFile = await cluster.writeFile('token', token);
    const { cert, key } = await selfSignedCertificate(cluster.dir, 'tls');
    const kubeconfig = `${cluster.dir}/operator.kubeconfig`;
    await copyFile(cp.kubeconfig, kubeconfig);
    const opPort = await freePort();
    cluster.startOperator([
      '--namespace', NS, '--identity', 'operator-0', '--kubeconfig', kubeconfig, '--listen-address', `127.0.0.1:${opPort}`,
      '--tls-cert', cert, '--tls-key', key, '--metrics-address', `127.0.0.1:${await freePort()}`, '--lease-duration', '3s',
      // The agents' token comes from `kubectl create token`, bound to no pod.
      '--allow-unbound-tokens',
    ]);
    await cluster.forwardLoopback([Number(new URL(cp.url).port), opPort]);
    const agentArgs = [
      '--namespace', NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile, '--operator-ca', cert,
      '--operator-url', `https://127.0.0.1:${opPort}`, '--firewall', 'nftables', '--metrics-address', `127.0.0.1:${METRICS}`,
      '--report-interval', '50ms', '--log-level', 'debug',
    ];
    await cluster.startAgent(bindNode, agentArgs, FULL);
    await cluster.startAgent(noRawNode, agentArgs, NO_RAW);
  });

  after(async () => {
    await cluster?.destroy();
  });

  const metric = async (node: TestNode, re: RegExp): Promise<number> => {
    const m = re.exec(await cluster.agentMetrics(node, METRICS));
    return m ? Number(m[1]) : 0;
  };
  const connects = (node: TestNode) => metric(node, /portsentry_probes_total\{protocol="tcp",mode="bind",type="connect"\} (\d+)/);
  const readyz = async (node: TestNode): Promise<{ status: number; text: string }> => {
    const script = `fetch('http://127.0.0.1:${METRICS}/readyz').then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() })));`;
    return JSON.parse((await cluster.exec(node.ns, [process.execPath, '-e', script])).stdout) as { status: number; text: string };
  };
  const policyStatus = async (name: string) => (JSON.parse((await cp.kubectl(['get', 'psp', name, '-o', 'json'])).stdout) as PolicyObject).status;

  test('bind mode: after a policy edit, a connect to any tripwire port is still caught', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    await cp.kubectl(['apply', '-f', '-'], { input: policy('bind', 'bind', `{ mode: bind, ports: [${PORTS.join(', ')}] }`) });
    await eventually('the bind node watches every port', async () => (await metric(bindNode, /portsentry_watched_ports\{protocol="tcp",mode="bind"\} (\d+)/)) === PORTS.length);
    // An edit of spec.tcp that keeps the ports: the detector stops and starts again.
    await cp.kubectl(['apply', '-f', '-'], { input: policy('bind', 'bind', `{ mode: bind, ports: [${PORTS.join(', ')}], exclude: [113] }`) });
    await bindNode.agent!.waitFor((l) => l.msg === 'policy applied', 15_000);
    const before = await connects(bindNode);
    const results = [];
    for (const port of PORTS) results.push(await cluster.connect(scannerAddress(1), bindNode.v4, port));
    const watched = await metric(bindNode, /portsentry_watched_ports\{protocol="tcp",mode="bind"\} (\d+)/);
    const caught = await eventually('every connect counted', async () => {
      const n = (await connects(bindNode)) - before;
      return n >= PORTS.length ? n : false;
    }, 5_000).catch(() => NaN);
    assert.equal(watched, PORTS.length, `ports watched after the edit: ${watched} (connects: ${results.join(' ')})`);
    assert.equal(caught, PORTS.length);
  });

  test('stealth mode: policy edits while a scan runs lose no probe', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const stealth = (ports: number[]) => policy('bind', 'bind', `{ mode: stealth, ports: [${ports.join(', ')}] }`);
    const syns = () => metric(bindNode, /portsentry_probes_total\{protocol="tcp",mode="stealth",type="syn"\} (\d+)/);
    const applied = () => bindNode.agent!.lines.filter((l) => l.msg === 'policy applied').length;
    const apply = async (ports: number[]) => {
      const n = applied();
      await cp.kubectl(['apply', '-f', '-'], { input: stealth(ports) });
      await eventually('the edit applied', async () => applied() > n, 15_000);
    };
    await apply(PORTS);
    await eventually('the stealth reader watches every port', async () => (await metric(bindNode, /portsentry_watched_ports\{protocol="tcp",mode="stealth"\} (\d+)/)) === PORTS.length);
    const before = await syns();
    // A steady stream of SYNs to a port every version of the policy watches, while the
    // watched ports change three times: each change reopens the raw readers.
    const COUNT = 20_000;
    // What reached the node: the bridge may drop some of a burst on a busy machine, before
    // any detector could see it; every SYN that arrived must be counted.
    const table = 'inet kps_test_arrivals';
    await cluster.exec(bindNode.ns, ['sh', '-c', `nft -f - <<'EOF'\nadd table ${table}\nadd chain ${table} seen { type filter hook prerouting priority -500; }\nadd rule ${table} seen ip saddr ${scannerAddress(3)} tcp dport ${PORTS[0]} counter\nEOF`]);
    const scan = cluster.exec(cluster.scanner, ['hping3', '-q', '-S', '-p', String(PORTS[0]), '-c', String(COUNT), '-i', 'u250', '-a', scannerAddress(3), bindNode.v4], 120_000);
    let running = true;
    void scan.finally(() => (running = false));
    await new Promise((r) => setTimeout(r, 300));
    let editsDuringScan = 0;
    for (const extra of [40109, 40110, 40111]) {
      await apply([...PORTS, extra]);
      if (running) editsDuringScan++;
    }
    await scan;
    assert.ok(editsDuringScan >= 2, `only ${editsDuringScan} edits landed while the scan ran: the stream was too short to test anything`);
    const listing = (await cluster.exec(bindNode.ns, ['nft', 'list', 'table', ...table.split(' ')])).stdout;
    await cluster.exec(bindNode.ns, ['nft', 'delete', 'table', ...table.split(' ')]);
    const arrived = Number(/counter packets (\d+)/.exec(listing)?.[1]);
    assert.ok(arrived >= COUNT * 0.9, `only ${arrived} of ${COUNT} SYNs reached the node`);
    const counted = await eventually('the stream counted', async () => {
      const n = (await syns()) - before;
      return n >= arrived ? n : false;
    }, 5_000).catch(async () => (await syns()) - before);
    const counts = (await cluster.agentMetrics(bindNode, METRICS)).split('\n').filter((l) => /^portsentry_(packets_inspected|packets_dropped|probes_spoofed|probes_ignored|probes)_total\{[^}]*tcp|^portsentry_probes_(spoofed|ignored)/.test(l));
    const detectors = bindNode.agent!.lines.filter((l) => /watching ports|policy applied|sentry|raw socket/.test(l.msg)).slice(-12);
    assert.equal(counted, arrived, `${arrived - counted} of the ${arrived} SYNs that reached the node (${COUNT} sent) lost across ${editsDuringScan} policy edits; counts: ${counts.join(', ')}; the agent's detector lines:\n${detectors.map((l) => JSON.stringify(l)).join('\n')}`);
  });

  test('a policy that cannot start is retried; /readyz and the policy status say why, until it can', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    await cp.kubectl(['apply', '-f', '-'], { input: policy('stealth', 'noraw', `{ mode: stealth, ports: [${PORTS.join(', ')}] }`) });
    const agent = noRawNode.agent!;
    await eventually('/readyz says detection is off', async () => {
      const r = await readyz(noRawNode);
      return r.status === 503 && /raw/.test(r.text) ? r : false;
    });
    await eventually('two retries with a growing delay', async () => {
      const delays = agent.lines.filter((l) => l.msg === 'policy start failed; retrying').map((l) => Number(l.retryInMs));
      return delays.length >= 3 && delays[2]! > delays[0]! ? delays : false;
    }, 20_000);
    const off = await eventually('the policy status names the node and the reason', async () => {
      const c = (await policyStatus('stealth'))?.conditions?.find((x) => x.type === 'Detecting');
      return c?.status === 'False' && c.message.includes(noRawNode.name) && /raw/.test(c.message) ? c : false;
    });
    t.diagnostic(`condition: ${off.reason}: ${off.message}`);
    // Bind mode needs no raw socket: the next retry takes the edited policy and detection runs.
    await cp.kubectl(['apply', '-f', '-'], { input: policy('stealth', 'noraw', `{ mode: bind, ports: [${PORTS.join(', ')}] }`) });
    await eventually('/readyz is ready', async () => (await readyz(noRawNode)).status === 200);
    await eventually('the condition clears', async () => {
      const c = (await policyStatus('stealth'))?.conditions?.find((x) => x.type === 'Detecting');
      return !c || c.status === 'True';
    });
  });
});
