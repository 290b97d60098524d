// The token check's local rules: which tokens are refused without a TokenReview, and how
// long an answer may be reused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cacheUntil, unverifiedClaims } from '../../src/operator/token-authenticator.js';

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
