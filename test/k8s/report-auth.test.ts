// The report endpoint's authentication against a real API server: a TokenRequest bound to a
// Pod object (with its node) is the agent's credential; tokens bound to no pod are refused;
// a deleted pod's token stops working within 10 s; and a flood of bad tokens costs the API
// server a bounded number of TokenReviews.
import assert from 'node:assert/strict';
import { createSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { podBoundToken } from '../../support/tokens.js';

const AGENT_SA = 'kube-portsentry-agent';

const report = (node: string, policy = 'auth') => ({ node, policy, sources: [] });

/** A token for the agent's account and audience; bound to a Pod object on `node` when given. */
async function token(cp: ControlPlane, pod?: { name: string; node: string }): Promise<string> {
  if (pod) return (await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: AGENT_SA, pod: pod.name, node: pod.node })).token;
  return (await cp.kubectl(['create', 'token', '-n', OPERATOR_NS, AGENT_SA, '--audience', 'kube-portsentry', '--duration', '1h'])).stdout.trim();
}

/** TokenReviews this operator has sent so far. */
function reviews(op: TestOperator): Promise<number> {
  return op.metrics.apiRequests.get().then((m) => m.values.filter((v) => v.labels.resource === 'tokenreviews').reduce((n, v) => n + v.value, 0));
}

describe('report authentication', { concurrency: false }, () => {
  const operators: TestOperator[] = [];
  const state = useControlPlane(prepareCluster, {}, async () => {
    for (const op of operators) await op.stop();
  });
  let op: TestOperator;

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, AGENT_SA]);
    for (const name of ['auth-node-1', 'auth-node-2']) await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    op = await startTestOperator(cp);
    operators.push(op);
  });

  test('a token bound to a pod reports for its pod\'s node only; a token bound to no pod is refused', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const bound = await token(cp, { name: 'agent-1', node: 'auth-node-1' });
    assert.equal(await postReport(op.url, bound, report('auth-node-1')), 200, 'its own node');
    assert.equal(await postReport(op.url, bound, report('auth-node-2')), 403, 'another node');
    const unbound = await token(cp);
    assert.equal(await postReport(op.url, unbound, report('auth-node-2')), 403, 'a token bound to no pod');
    // Allowed only where the operator is told to (tests; the chart never sets it).
    const lax = await startTestOperator(cp, { allowUnboundTokens: true });
    operators.push(lax);
    assert.equal(await postReport(lax.url, unbound, report('auth-node-2')), 200, 'unbound, with allowUnboundTokens');
  });

  test('a deleted pod\'s token stops working within 10 s', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const bound = await token(cp, { name: 'agent-2', node: 'auth-node-1' });
    assert.equal(await postReport(op.url, bound, report('auth-node-1')), 200);
    const deleted = Date.now();
    assert.equal((await cp.api('DELETE', `/api/v1/namespaces/${OPERATOR_NS}/pods/agent-2?gracePeriodSeconds=0`)).status, 200);
    let status = 200;
    while (status === 200 && Date.now() - deleted < 15_000) {
      await new Promise((r) => setTimeout(r, 250));
      status = await postReport(op.url, bound, report('auth-node-1'));
    }
    const after = Date.now() - deleted;
    t.diagnostic(`refused ${after} ms after the pod was deleted (HTTP ${status})`);
    assert.equal(status, 401);
    assert.ok(after <= 10_500, `the deleted pod's token worked for ${after} ms`);
  });

  test('1,000 bad requests cause a bounded number of TokenReviews', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    // Tokens as an attacker would make them: garbage; JWTs for our audience and unexpired,
    // signed with a key of their own; and one such token sent again and again.
    const key = await readFile(`${cp.dir}/sa.key`, 'utf8'); // only to make the signature's shape real
    const jwt = (i: number) => {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'forged' })).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const claims = { aud: ['kube-portsentry'], exp: now + 3600, iat: now, iss: 'https://kube-portsentry-envtest.invalid', sub: `system:serviceaccount:${OPERATOR_NS}:${AGENT_SA}`, jti: String(i) };
      const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
      // Signed, then one byte of the payload changed: well formed, never valid.
      const signature = createSign('RSA-SHA256').update(`${header}.${body}x`).sign(key, 'base64url');
      return `${header}.${body}.${signature}`;
    };
    const bad = [
      ...Array.from({ length: 300 }, (_, i) => `garbage-${i}`),
      ...Array.from({ length: 400 }, (_, i) => jwt(i)),
      ...Array.from({ length: 300 }, () => jwt(-1)),
    ];
    const before = await reviews(op);
    const started = Date.now();
    const statuses = new Map<number, number>();
    for (let i = 0; i < bad.length; i += 50) {
      const batch = await Promise.all(bad.slice(i, i + 50).map((tk) => postReport(op.url, tk, report('auth-node-1'))));
      for (const s of batch) statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
    const elapsed = (Date.now() - started) / 1000;
    const made = (await reviews(op)) - before;
    t.diagnostic(`1,000 bad requests in ${elapsed.toFixed(1)} s: ${made} TokenReviews; answers ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.equal(statuses.get(200) ?? 0, 0, 'a bad token was accepted');
    // The bound: a burst and a refill rate for tokens never seen valid (see the README).
    assert.ok(made <= 20 + 5 * Math.ceil(elapsed), `${made} TokenReviews for 1,000 bad requests in ${elapsed.toFixed(1)} s`);
  });
});
