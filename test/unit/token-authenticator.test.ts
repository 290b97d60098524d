// The token check's local rules: which tokens are refused without a TokenReview, how long an
// answer may be reused, and that a live agent's reports never wait for its token's review.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Kube } from '../../src/k8s/client.js';
import { createLogger } from '../../src/log/logger.js';
import { cacheUntil, DEFAULT_REVIEW_LIMITS, tokenReviewAuthenticator, unverifiedClaims } from '../../src/operator/token-authenticator.js';

const jwt = (claims: unknown) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

test('the claims that can rule a token out: audience and expiry; anything else is not a token', () => {
  assert.deepEqual(unverifiedClaims(jwt({ aud: ['kube-portsentry', 'x'], exp: 1_900_000_000 })), { audiences: ['kube-portsentry', 'x'], expiresAt: 1_900_000_000_000 });
  assert.deepEqual(unverifiedClaims(jwt({ aud: 'kube-portsentry', exp: 5 })), { audiences: ['kube-portsentry'], expiresAt: 5000 });
  for (const bad of ['garbage', 'a.b', 'a.b.c.d', `${jwt({ aud: 'x' })}`, jwt({ aud: 'x', exp: 'soon' }), 'e30.!!!.c2ln', 'e30.bm90IGpzb24.c2ln'])
    assert.equal(unverifiedClaims(bad), null, bad);
});

test('an answer is kept 10 s at most, and never past the token\'s expiry', () => {
  assert.equal(cacheUntil(1_000_000, 9_000_000, 10_000), 1_010_000);
  assert.equal(cacheUntil(1_000_000, 1_004_000, 10_000), 1_004_000, 'a token expiring in 4 s is cached 4 s');
});

test('a valid answer past half its life is reviewed again in the background: no report waits for that review, and its verdict counts from then on', async () => {
  // The API server's TokenReview, held in the test's hand: each review waits until answered.
  const reviews: { resolve: (authenticated: boolean) => void }[] = [];
  const kube = {
    auth: {
      createTokenReview: () =>
        new Promise((resolve) =>
          reviews.push({ resolve: (authenticated) => resolve({ status: { authenticated, audiences: ['kube-portsentry'], user: { username: 'system:serviceaccount:ns:agent' } } }) }),
        ),
    },
  } as unknown as Kube;
  const limits = { ...DEFAULT_REVIEW_LIMITS, cacheMs: 400 };
  const authenticate = tokenReviewAuthenticator(kube, { audience: 'kube-portsentry', subject: 'system:serviceaccount:ns:agent' }, createLogger('silent'), limits);
  const token = jwt({ aud: 'kube-portsentry', exp: Math.floor(Date.now() / 1000) + 3600 });
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  const first = authenticate(token);
  await turns(3);
  assert.equal(reviews.length, 1);
  reviews[0]!.resolve(true);
  assert.equal((await first)?.username, 'system:serviceaccount:ns:agent');
  await new Promise((r) => setTimeout(r, 250));
  // Past half the answer's life: answered from the cache at once, while a review goes out.
  assert.equal((await authenticate(token))?.username, 'system:serviceaccount:ns:agent', 'answered while the review is pending');
  await turns(3);
  assert.equal(reviews.length, 2, 'a review went out in the background');
  // The pod is gone: the background review says so, and the token stops working at once.
  reviews[1]!.resolve(false);
  await turns(3);
  assert.equal(await authenticate(token), null);
});
