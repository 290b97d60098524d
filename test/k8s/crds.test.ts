// The CRDs against a real API server: installed and Established; a corpus of policies
// judged the same way by the API server (schema + CEL) and by the runtime validator;
// server-side defaults equal to the runtime defaults; kubectl get columns.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { allCrds } from '../../src/k8s/crds.js';
import { validateDocument } from '../../src/policy/validate.js';
import { useControlPlane } from '../../support/control-plane.js';

const CRD_DIR = new URL('../../../crds/', import.meta.url);

test('crds/ holds exactly what the generator makes (run `npm run crds` after a schema change)', async () => {
  for (const crd of allCrds()) {
    const name = (crd.metadata as { name: string }).name.split('.')[0];
    const committed = parse(await readFile(new URL(`${name}.yaml`, CRD_DIR), 'utf8')) as unknown;
    assert.deepEqual(committed, JSON.parse(JSON.stringify(crd)), `crds/${name}.yaml is stale`);
  }
});

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'kube-portsentry.io/v1alpha1',
  kind: 'PortSentryPolicy',
  metadata: { name },
  spec,
});

const VALID: [string, unknown][] = [
  ['empty-spec', {}],
  ['ranges-and-v6', { tcp: { ports: [1, '6000-6063', '79'] }, ignore: ['192.0.2.0/24', '2001:db8:42::/48', '2001:db8::1', '198.51.100.7'] }],
  ['stealth-advanced', { tcp: { mode: 'advanced', advancedLimit: 2048, exclude: [113] }, udp: { mode: 'stealth', ports: [7, 9] } }],
  ['commands', { response: { tcp: 'command', udp: 'command', command: ['/usr/local/bin/notify', '$TARGET$', 'port=$PORT$', '$MODE$'], runCommandFirst: true } }],
  ['classic-actions', { trigger: { count: 2, window: '10m' }, response: { duration: '24h', route: { enabled: true }, hostsDeny: { enabled: true, line: 'ALL: $TARGET$' } } }],
  ['kernel-fast-path', { tcp: { mode: 'stealth', ports: [1, 11] }, response: { kernelFastPath: true, firewall: 'nftables' } }],
];

/** [case, spec, path the runtime validator names, path the API server names] */
const INVALID: [string, unknown, string, string][] = [
  ['port-zero', { tcp: { ports: [0] } }, 'spec.tcp.ports[0]', 'spec.tcp.ports[0]'],
  ['port-too-big', { udp: { ports: [70000] } }, 'spec.udp.ports[0]', 'spec.udp.ports[0]'],
  ['range-reversed', { tcp: { ports: ['20-10'] } }, 'spec.tcp.ports[0]', 'spec.tcp.ports[0]'],
  ['range-too-big', { tcp: { ports: ['1000-70000'] } }, 'spec.tcp.ports[0]', 'spec.tcp.ports[0]'],
  ['port-text', { udp: { ports: ['http'] } }, 'spec.udp.ports[0]', 'spec.udp.ports[0]'],
  ['exclude-bad', { tcp: { exclude: [113, 0] } }, 'spec.tcp.exclude[1]', 'spec.tcp.exclude[1]'],
  ['mode-unknown', { tcp: { mode: 'sneaky' } }, 'spec.tcp.mode', 'spec.tcp.mode'],
  ['advanced-limit-zero', { tcp: { advancedLimit: 0 } }, 'spec.tcp.advancedLimit', 'spec.tcp.advancedLimit'],
  ['trigger-negative', { trigger: { count: -1 } }, 'spec.trigger.count', 'spec.trigger.count'],
  ['window-fraction', { trigger: { window: '1.5h' } }, 'spec.trigger.window', 'spec.trigger.window'],
  ['window-too-long', { trigger: { window: '200h' } }, 'spec.trigger.window', 'spec.trigger.window'],
  ['duration-too-short', { response: { duration: '500ms' } }, 'spec.response.duration', 'spec.response.duration'],
  ['ignore-v4-prefix', { ignore: ['10.0.0.0/33'] }, 'spec.ignore[0]', 'spec.ignore[0]'],
  ['ignore-v6-prefix', { ignore: ['2001:db8::/129'] }, 'spec.ignore[0]', 'spec.ignore[0]'],
  ['ignore-v6-garbage', { ignore: ['2001:db8::g'] }, 'spec.ignore[0]', 'spec.ignore[0]'],
  ['ignore-v4-garbage', { ignore: ['192.0.2.300'] }, 'spec.ignore[0]', 'spec.ignore[0]'],
  ['action-unknown', { response: { udp: 'explode' } }, 'spec.response.udp', 'spec.response.udp'],
  ['command-missing', { response: { udp: 'command' } }, 'spec.response.command', 'spec.response'],
  ['run-first-without-command', { response: { runCommandFirst: true } }, 'spec.response.runCommandFirst', 'spec.response'],
  ['fast-path-with-trigger', { trigger: { count: 2 }, response: { kernelFastPath: true } }, 'spec.response.kernelFastPath', 'spec'],
  ['fast-path-verified-only', { response: { kernelFastPath: true, verifiedOnly: true } }, 'spec.response.kernelFastPath', 'spec.response'],
  ['fast-path-iptables', { response: { kernelFastPath: true, firewall: 'iptables' } }, 'spec.response.kernelFastPath', 'spec.response'],
  ['command-variable-unknown', { response: { command: ['/bin/notify', '$HOST$'] } }, 'spec.response.command[1]', 'spec.response.command[1]'],
  ['command-program-variable', { response: { command: ['$TARGET$'] } }, 'spec.response.command', 'spec.response.command'],
  ['hosts-deny-no-target', { response: { hostsDeny: { enabled: true, line: 'ALL: everyone' } } }, 'spec.response.hostsDeny.line', 'spec.response.hostsDeny.line'],
  ['firewall-unknown', { response: { firewall: 'pf' } }, 'spec.response.firewall', 'spec.response.firewall'],
  ['rate-zero', { response: { maxBlocksPerMinute: 0 } }, 'spec.response.maxBlocksPerMinute', 'spec.response.maxBlocksPerMinute'],
  ['unknown-field', { tcp: { portz: [1] } }, 'spec.tcp.portz', 'spec.tcp.portz'],
];

describe('CRDs on a real API server', { concurrency: false }, () => {
  const env = useControlPlane(async (cp) => {
    await cp.kubectl(['apply', '-f', new URL('.', CRD_DIR).pathname]);
  });

  test('both CRDs become Established', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const { stdout } = await cp.kubectl([
      'wait', '--for=condition=Established', '--timeout=30s',
      'crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io',
    ]);
    assert.equal(stdout.match(/condition met/g)?.length, 2);
  });

  test('valid policies: accepted by both, and the server fills the same defaults', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    for (const [name, spec] of VALID) {
      const local = validateDocument(doc(name, spec));
      assert.ok(local.ok, `${name}: ${JSON.stringify(!local.ok && local.problems)}`);
      const { stdout } = await cp.kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], { input: stringify(doc(name, spec)) });
      const served = JSON.parse(stdout) as { spec: unknown };
      assert.deepEqual(served.spec, local.value.spec, `${name}: server defaults differ from runtime defaults`);
    }
  });

  test(`${INVALID.length} invalid policies: rejected by both, naming the field`, async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    for (const [name, spec, localPath, serverPath] of INVALID) {
      const local = validateDocument(doc(name, spec));
      assert.ok(!local.ok, `${name}: the runtime validator accepted it`);
      assert.ok(
        local.problems.some((p) => p.path === localPath),
        `${name}: runtime problems ${JSON.stringify(local.problems)} do not name ${localPath}`,
      );
      const server = await cp
        .kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(doc(name, spec)) })
        .then(() => '', (err: Error) => err.message);
      assert.ok(server, `${name}: the API server accepted it`);
      assert.ok(server.includes(serverPath), `${name}: the API server's message does not name ${serverPath}: ${server}`);
    }
  });

  test('kubectl get psp and get bh print the promised columns', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    await cp.kubectl(['apply', '-f', '-'], { input: stringify(doc('edge', { tcp: { mode: 'stealth' }, trigger: { count: 2 } })) });
    const psp = (await cp.kubectl(['get', 'psp'])).stdout.split('\n');
    assert.match(psp[0]!, /^NAME\s+TCP\s+UDP\s+TRIGGER\s+TCP-ACTION\s+UDP-ACTION\s+NODES\s+READY\s+AGE$/);
    assert.match(psp.find((l) => l.startsWith('edge'))!, /^edge\s+stealth\s+bind\s+2\s+block\s+alert\s+\d+s$/);

    const manual = {
      apiVersion: 'kube-portsentry.io/v1alpha1',
      kind: 'BlockedHost',
      metadata: { name: 'scanner-198-51-100-7' },
      spec: { address: '198.51.100.7', reason: 'seen scanning the edge', expiresAt: '2030-01-01T00:00:00Z' },
    };
    await cp.kubectl(['apply', '-f', '-'], { input: stringify(manual) });
    await cp.kubectl(['apply', '-f', '-'], {
      input: stringify({ ...manual, metadata: { name: 'net-2001-db8' }, spec: { address: '2001:db8:bad::/48', reason: 'hostile network' } }),
    });
    const bh = (await cp.kubectl(['get', 'bh'])).stdout.split('\n');
    assert.match(bh[0]!, /^NAME\s+ADDRESS\s+SOURCE\s+REASON\s+PORTS\s+NODES\s+EXPIRES\s+AGE$/);
    assert.match(bh.find((l) => l.startsWith('scanner'))!, /^scanner-198-51-100-7\s+198\.51\.100\.7\s+manual\s+seen scanning the edge\s+2030-01-01T00:00:00Z\s+\d+s$/);
    assert.match(bh.find((l) => l.startsWith('net'))!, /^net-2001-db8\s+2001:db8:bad::\/48\s+manual\s+hostile network/);
    const all = (await cp.kubectl(['get', 'portsentry', '-o', 'name'])).stdout;
    assert.match(all, /portsentrypolicy.kube-portsentry.io\/edge/);
    assert.match(all, /blockedhost.kube-portsentry.io\/scanner-198-51-100-7/);
  });

  test('a BlockedHost needs a valid address, which cannot change', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const bad = await cp
      .kubectl(['apply', '--dry-run=server', '-f', '-'], {
        input: stringify({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'BlockedHost', metadata: { name: 'bad' }, spec: { address: '198.51.100.300' } }),
      })
      .then(() => '', (err: Error) => err.message);
    assert.match(bad, /spec.address.*must be an IP address or a CIDR/);
    const moved = await cp
      .kubectl(['patch', 'bh', 'scanner-198-51-100-7', '--type=merge', '-p', '{"spec":{"address":"198.51.100.8"}}'])
      .then(() => '', (err: Error) => err.message);
    assert.match(moved, /address is immutable/);
  });
});
