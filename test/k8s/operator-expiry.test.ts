// The operator's expiry against a real API server: a detected BlockedHost is deleted once
// its expiresAt passes, one renewed before then is kept until its new expiry, and a manual
// one is never deleted, past its expiry or not (src/operator/expiry-loop.ts).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useControlPlane } from '../../support/control-plane.js';
import { prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { eventually } from '../../support/cluster.js';

const PATH = '/apis/kube-portsentry.io/v1alpha1/blockedhosts';
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
const blockedHost = (name: string, address: string, source: 'detected' | 'manual', expiresAt: number) => ({
  apiVersion: 'kube-portsentry.io/v1alpha1',
  kind: 'BlockedHost',
  metadata: { name },
  spec: { address, reason: 'test', source, expiresAt: iso(expiresAt), ...(source === 'detected' ? { policy: 'p' } : {}) },
});

describe('operator expiry', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    if (state.cp) op = await startTestOperator(state.cp);
  });

  test('detected BlockedHosts go at their expiry (a renewed one at its new one); manual ones stay', async (t) => {
    const cp = state.cp;
    if (!cp || !op) return t.skip(state.why);
    const names = async () => new Set(((await cp.api('GET', PATH)).body as { items: { metadata: { name: string } }[] }).items.map((b) => b.metadata.name));
    const now = Date.now();
    // In watch order: the operator deleting the last one proves it saw the others' creation.
    for (const body of [
      blockedHost('renewed', '198.51.100.3', 'detected', now + 10_000),
      blockedHost('soon', '198.51.100.2', 'detected', now + 10_000),
      blockedHost('manual-expired', '198.51.100.4', 'manual', now - 60_000),
      blockedHost('later', '198.51.100.5', 'detected', now + 3_600_000),
      blockedHost('already-expired', '198.51.100.1', 'detected', now - 60_000),
    ])
      assert.equal((await cp.api('POST', PATH, body)).status, 201);
    await eventually('the expired detected one deleted', async () => !(await names()).has('already-expired'), 10_000);
    // Renewed before its expiry: its old expiry must not delete it.
    const renewedUntil = Date.now() + 20_000;
    await cp.kubectl(['patch', 'blockedhost', 'renewed', '--type', 'merge', '-p', JSON.stringify({ spec: { expiresAt: iso(renewedUntil) } })]);
    await eventually('the one due in 10 s deleted', async () => !(await names()).has('soon'), 20_000);
    const mid = await names();
    assert.ok(mid.has('renewed') || Date.now() >= renewedUntil, 'the renewed one was deleted at its old expiry');
    await eventually('the renewed one deleted at its new expiry', async () => !(await names()).has('renewed'), 30_000);
    const left = await names();
    assert.ok(left.has('manual-expired'), 'a manual BlockedHost was deleted');
    assert.ok(left.has('later'), 'one not due was deleted');
  });
});
