// What a neighbour can make the cluster half do, with real agents in node namespaces
// against a real API server: commands planted in a node's policy ConfigMap.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodePolicyConfigMapName } from '../../src/k8s/objects.js';
import { eventually, TestCluster, type TestNode } from '../helpers/cluster.js';
import { useControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { OPERATOR_NS, prepareCluster } from '../helpers/operator.js';
import { hasTool } from '../helpers/prereq.js';
import type { SentryProcess } from '../helpers/sentry-process.js';

function missing(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push('root');
  for (const tool of ['nft', 'hping3', 'go']) if (!hasTool(tool)) out.push(tool);
  return out;
}

/** Writes a node's policy ConfigMap as anyone with ConfigMap rights in the namespace could. */
async function plantPolicy(cp: ControlPlane, node: string, spec: unknown): Promise<void> {
  const name = nodePolicyConfigMapName(node);
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: OPERATOR_NS }, data: { 'policy.json': JSON.stringify({ policy: 'planted', generation: 1, spec }) } };
  const path = `/api/v1/namespaces/${OPERATOR_NS}/configmaps`;
  const r = await cp.api('POST', path, body);
  if (r.status === 409) assert.equal((await cp.api('PUT', `${path}/${name}`, body)).status, 200);
  else assert.equal(r.status, 201, JSON.stringify(r.body));
}

describe('trust: the agent against planted policies', { concurrency: false }, () => {
  const why = missing();
  if (why.length && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
  let cluster: TestCluster | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => cluster?.destroy());
  let agentArgs: string[];
  const skip = () => why.length > 0 || !state.cp;
  const marker = join(tmpdir(), `kps-planted-${process.pid}`);

  before(async () => {
    if (skip()) return;
    const cp = state.cp!;
    cluster = await TestCluster.create(1);
    const node = cluster.nodes[0]!;
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name } });
    await cluster.forwardLoopback([Number(new URL(cp.url).port)]);
    const tokenFile = await cluster.writeFile('token', 'unused');
    agentArgs = [
      '--namespace', OPERATOR_NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile,
      '--operator-url', 'https://127.0.0.1:1', '--firewall', 'nftables', '--log-level', 'debug',
    ];
  });
  after(async () => {
    await rm(marker, { force: true });
  });

  const probe = (node: TestNode, port: number) =>
    cluster!.exec(cluster!.scanner, ['hping3', '-S', '-c', '1', '-p', String(port), node.v4]).catch(() => undefined);

  test('a planted policy with a command: refused unless the node allows that program (--allowed-commands)', async (t) => {
    if (skip()) return t.skip(why.join(', ') || state.why);
    const cp = state.cp!;
    const node = cluster!.nodes[0]!;
    const writer = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, process.argv.slice(1).join(' '))`;
    await plantPolicy(cp, node.name, {
      tcp: { mode: 'stealth', ports: [1] },
      udp: { mode: 'off' },
      trigger: { count: 0 },
      response: { tcp: 'command', scope: 'node', firewall: 'none', command: [process.execPath, '-e', writer, '$TARGET$'] },
    });
    const refusing: SentryProcess = await cluster!.startAgent(node, agentArgs);
    await refusing.waitFor((l) => l.msg.startsWith('effective policy rejected') || l.msg === 'effective policy in force', 15_000);
    await probe(node, 1);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(existsSync(marker), false, 'the planted command ran as root on the node');
    const rejected = refusing.find((l) => l.msg.startsWith('effective policy rejected'));
    assert.ok(rejected, 'the agent says why it refused the policy');
    assert.match(String(rejected.problems), /spec\.response\.command: ".*" is not an allowed command/);
    await refusing.stop();

    // The node's admin allowed that program: the same policy runs it.
    const allowing = await cluster!.startAgent(node, [...agentArgs, '--allowed-commands', process.execPath]);
    await allowing.waitFor((l) => l.msg === 'effective policy in force', 15_000);
    await probe(node, 1);
    await eventually('the allowed command ran', async () => existsSync(marker));
    await allowing.stop();
  });
});
