// Each owner of kernel objects gets names of its own, within the kernel's limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OwnershipError, checkOwner, firewallNames, instanceProblem } from '../../src/respond/firewall/owner.js';

test('the standalone sentry keeps its names; each agent release gets its own', () => {
  const standalone = firewallNames({ kind: 'standalone', stateDir: '/var/lib/kube-portsentry' });
  assert.deepEqual(standalone, {
    table: 'kube_portsentry',
    setPrefix: 'kube-portsentry',
    chain: 'KUBE-PORTSENTRY',
    comment: 'kube-portsentry standalone /var/lib/kube-portsentry',
    routeMetric: 157,
  });
  const a = firewallNames({ kind: 'agent', instance: 'kps' });
  const b = firewallNames({ kind: 'agent', instance: 'kps-2.prod' });
  assert.deepEqual([a.table, a.setPrefix, a.chain, a.comment], ['kube_portsentry_agent_kps', 'kps-kps', 'KPS-kps', 'kube-portsentry agent kps']);
  assert.equal(b.table, 'kube_portsentry_agent_kps_2.prod');
  const all = [standalone, a, b];
  for (const key of ['table', 'setPrefix', 'chain', 'comment', 'routeMetric'] as const) assert.equal(new Set(all.map((n) => n[key])).size, 3, `${key} differs per owner`);
});

test('names stay within ipset (31) and iptables chain (28) limits for the longest release names', () => {
  const long = 'a'.repeat(30) + '-' + 'b'.repeat(22);
  const other = 'a'.repeat(30) + '-' + 'c'.repeat(22);
  const n = firewallNames({ kind: 'agent', instance: long });
  assert.ok(`${n.setPrefix}-v6`.length <= 31, n.setPrefix);
  assert.ok(n.chain.length <= 28, n.chain);
  assert.notEqual(n.setPrefix, firewallNames({ kind: 'agent', instance: other }).setPrefix, 'a cut name keeps a hash of the whole');
  assert.ok(Buffer.byteLength(firewallNames({ kind: 'standalone', stateDir: `/${'d'.repeat(300)}` }).comment) <= 128);
});

test('instance names are Helm release names; another owner\'s objects are refused', () => {
  assert.equal(instanceProblem('kps'), null);
  assert.match(instanceProblem('KPS')!, /must be a Helm release name/);
  assert.match(instanceProblem('a'.repeat(54))!, /at most 53/);
  assert.match(instanceProblem('x;rm')!, /must be a Helm release name/);
  assert.throws(() => firewallNames({ kind: 'agent', instance: 'bad name' }), /must be a Helm release name/);
  checkOwner('table', undefined, 'kube-portsentry standalone /s'); // made before owners were marked: adopted
  checkOwner('table', 'kube-portsentry standalone /s', 'kube-portsentry standalone /s');
  assert.throws(() => checkOwner('nftables table inet kube_portsentry', 'kube-portsentry standalone /other', 'kube-portsentry standalone /s'), (err: Error) =>
    err instanceof OwnershipError && /nftables table inet kube_portsentry belongs to "kube-portsentry standalone \/other", not to "kube-portsentry standalone \/s": refusing .* \(stop that sentry, or remove its state with: kube-portsentry flush --state-dir \/other\)$/.test(err.message));
  assert.throws(() => checkOwner('t', 'kube-portsentry agent kps', 'kube-portsentry standalone /s'), /kube-portsentry cleanup --instance kps\)$/);
});
