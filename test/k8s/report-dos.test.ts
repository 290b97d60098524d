// Nobody who can merely reach the report endpoint can lock the agents out of it. A client
// with no credential sends a few hundred well-formed JWTs a second (our audience, unexpired,
// a signature of nobody's, or of a key of its own); the operator checks each token's
// signature against the API server's service-account keys (/openid/v1/jwks) first, so
// forged tokens cost no TokenReview and spend no budget, and every fresh agent token (a new
// agent pod, a rotated token, a new leader) is still accepted during the flood. The
// controls: the forged tokens are refused, and the agents' tokens are still reviewed (a
// deleted pod's token stops working: test/k8s/report-auth.test.ts).
// Real API server, real TokenReviews, real operator report endpoint.
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, postReport, prepareCluster, startTestOperator, type TestOperator } from '../../support/operator.js';
import { podBoundToken } from '../../support/tokens.js';

const AGENT_SA = 'kube-portsentry-agent';
const ISSUER = 'https://kube-portsentry-envtest.invalid';

/** Tokens as anyone can make them: our audience, unexpired, claiming the agent's account and a pod on the node. */
function forger(apiServerKey: string) {
  const own = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return (i: number): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64({ alg: 'RS256', kid: i % 3 === 0 ? `kid-${i}` : 'x' });
    const claims = b64({
      aud: ['kube-portsentry'], exp: now + 3600, iat: now, nbf: now, iss: ISSUER, sub: `system:serviceaccount:${OPERATOR_NS}:${AGENT_SA}`, jti: `${i}-${Math.random()}`,
      'kubernetes.io': { namespace: OPERATOR_NS, node: { name: 'dos-node-1', uid: 'x' }, pod: { name: 'agent-x', uid: 'x' }, serviceaccount: { name: AGENT_SA, uid: 'x' } },
    });
    switch (i % 3) {
      case 0: // a signature of nobody's
        return `${header}.${claims}.c2lnbmF0dXJl`;
      case 1: // signed with a key of its own
        return `${header}.${claims}.${createSign('RSA-SHA256').update(`${header}.${claims}`).sign(own, 'base64url')}`;
      default: // the API server's signature over other bytes
        return `${header}.${claims}.${createSign('RSA-SHA256').update(`${header}.${claims}x`).sign(apiServerKey, 'base64url')}`;
    }
  };
}

describe('unauthenticated clients cannot starve agent reports', { concurrency: false }, () => {
  let op: TestOperator | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => op?.stop());

  before(async () => {
    const cp = state.cp;
    if (!cp) return;
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, AGENT_SA]);
    await cp.api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'dos-node-1' } });
    op = await startTestOperator(cp); // the default authenticator: real TokenReviews, default limits
  });

  const reviews = async () => (await op!.metrics.apiRequests.get()).values.filter((v) => v.labels.resource === 'tokenreviews').reduce((n, v) => n + v.value, 0);

  test('a few hundred forged tokens a second: every fresh agent token still gets in, and the forgeries cost no TokenReview', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    const report = { node: 'dos-node-1', policy: null, sources: [] };
    // Agent tokens the operator has not seen yet (new pods, rotated tokens, a new leader).
    const fresh: string[] = [];
    for (let i = 0; i < 40; i++) fresh.push((await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: AGENT_SA, pod: `agent-${i}`, node: 'dos-node-1' })).token);
    // Control: on a quiet endpoint a fresh agent token is accepted.
    assert.equal(await postReport(op!.url, fresh.pop()!, report), 200, 'control: a fresh agent token, no attack');

    const forge = forger(await readFile(`${cp.dir}/sa.key`, 'utf8'));
    let stop = false;
    let sent = 0;
    const forgedAnswers = new Map<number, number>();
    const loop = async () => {
      while (!stop) {
        const s = await postReport(op!.url, forge(sent++), report).catch(() => 0);
        forgedAnswers.set(s, (forgedAnswers.get(s) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const reviewsBefore = await reviews();
    const attack = Promise.all([loop(), loop()]);
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 3000)); // a budget of 20 would be spent by now

    const statuses = new Map<number, number>();
    for (const token of fresh.splice(0, 30)) {
      const s = await postReport(op!.url, token, report);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 250));
    }
    stop = true;
    await attack;
    const rate = sent / ((Date.now() - started) / 1000);
    const made = (await reviews()) - reviewsBefore;
    t.diagnostic(`attacker: ${sent} forged tokens (${rate.toFixed(0)}/s), answered ${JSON.stringify(Object.fromEntries(forgedAnswers))}; 30 fresh agent tokens answered ${JSON.stringify(Object.fromEntries(statuses))}; TokenReviews meanwhile: ${made}`);
    assert.equal(statuses.get(200) ?? 0, 30, 'fresh agent tokens were turned away during the flood');
    assert.deepEqual([...forgedAnswers.keys()], [401], 'a forged token got something else than 401');
    assert.ok(made <= 30, `${made} TokenReviews for 30 agent tokens and ${sent} forged ones`);
    // After the flood a fresh token works, as before it.
    assert.equal(await postReport(op!.url, fresh.pop()!, report), 200, 'after the attack');
  });

  test('a token the API server signed for another account, even for our audience, costs no TokenReview: 403', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    await cp.kubectl(['create', 'serviceaccount', '-n', OPERATOR_NS, 'someone-else']).catch(() => undefined);
    const reviewsBefore = await reviews();
    for (let i = 0; i < 10; i++) {
      const { token } = await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: 'someone-else', pod: `other-${i}`, node: 'dos-node-1' });
      assert.equal(await postReport(op!.url, token, { node: 'dos-node-1', policy: null, sources: [] }), 403);
    }
    assert.equal((await reviews()) - reviewsBefore, 0, 'TokenReviews for tokens of another account');
  });
});
