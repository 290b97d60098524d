// The local check of a ServiceAccount token against the API server's keys, directly: what
// the API server signed for us passes with its claims; anything else, however well formed,
// does not.
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { keysOf } from '../../src/operator/api-server-keys.js';
import { verifyToken } from '../../src/operator/service-account-jwt.js';

const ISSUER = 'https://issuer.example';
const NOW = 1_800_000_000_000;
const expected = { issuer: ISSUER, audience: 'kube-portsentry', now: NOW };
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keys = keysOf({ keys: [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' }, { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1' }, { kty: 'nonsense', kid: 'bad' }, { kty: 'RSA' }] });

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const claims = (over: Record<string, unknown> = {}) => ({
  iss: ISSUER, aud: ['kube-portsentry'], exp: NOW / 1000 + 3600, nbf: NOW / 1000 - 10, iat: NOW / 1000 - 10,
  sub: 'system:serviceaccount:kps:agent', 'kubernetes.io': { node: { name: 'node-1', uid: 'u' }, pod: { name: 'agent-x', uid: 'p' } }, ...over,
});
function jwt(payload: object, alg = 'RS256', kid = 'rsa-1', key: KeyObject = rsa.privateKey): string {
  const signed = `${b64({ alg, kid })}.${b64(payload)}`;
  const signature = alg.startsWith('ES') ? sign('sha256', Buffer.from(signed), { key, dsaEncoding: 'ieee-p1363' }) : createSign('RSA-SHA256').update(signed).sign(key);
  return `${signed}.${signature.toString('base64url')}`;
}

test('a token the API server signed for our audience passes, with its subject and binding', () => {
  assert.deepEqual(verifyToken(jwt(claims()), keys, expected), {
    ok: true,
    claims: { subject: 'system:serviceaccount:kps:agent', audiences: ['kube-portsentry'], expiresAt: NOW + 3_600_000, node: 'node-1', pod: 'agent-x' },
  });
  assert.equal(verifyToken(jwt(claims(), 'ES256', 'ec-1', ec.privateKey), keys, expected).ok, true, 'an EC key');
  const unbound = verifyToken(jwt(claims({ 'kubernetes.io': undefined })), keys, expected);
  assert.ok(unbound.ok && unbound.claims.pod === undefined && unbound.claims.node === undefined);
  assert.equal(keys.size, 2, 'keys without an id or of an unknown type are skipped');
});

test('anything else is refused, without the claims being believed', () => {
  const refused = (token: string, reason: RegExp, unknownKey = false) => {
    const v = verifyToken(token, keys, expected);
    assert.equal(v.ok, false, token.slice(0, 60));
    if (!v.ok) {
      assert.match(v.reason, reason);
      assert.equal(v.unknownKey ?? false, unknownKey);
    }
  };
  refused(jwt(claims(), 'RS256', 'rsa-1', other.privateKey), /bad signature/);
  refused(`${jwt(claims()).slice(0, -4)}AAAA`, /bad signature/);
  refused(`${b64({ alg: 'RS256', kid: 'rsa-1' })}.${b64(claims({ sub: 'system:serviceaccount:kps:admin' }))}.${jwt(claims()).split('.')[2]}`, /bad signature/, false);
  refused(jwt(claims(), 'RS256', 'rotated'), /no API server key/, true);
  refused(`${b64({ alg: 'none', kid: 'rsa-1' })}.${b64(claims())}.`, /not a JWT/);
  refused(`${b64({ alg: 'none', kid: 'rsa-1' })}.${b64(claims())}.c2ln`, /algorithm "none"/);
  refused(`${b64({ alg: 'HS256', kid: 'rsa-1' })}.${b64(claims())}.c2ln`, /algorithm "HS256"/);
  refused(jwt(claims(), 'ES256', 'rsa-1', ec.privateKey), /bad signature/, false); // an EC signature checked with the RSA key
  refused(jwt(claims({ iss: 'https://elsewhere.example' })), /issuer/);
  refused(jwt(claims({ aud: ['someone-else'] })), /audience/);
  refused(jwt(claims({ exp: NOW / 1000 - 1 })), /expired/);
  refused(jwt(claims({ exp: 'later' })), /expired/);
  refused(jwt(claims({ nbf: NOW / 1000 + 3600 })), /not valid yet/);
  refused(jwt(claims({ sub: '' })), /no subject/);
  for (const bad of ['', 'a.b', 'a.b.c.d', 'e30.e30.!!', 'bm90IGpzb24.e30.c2ln']) refused(bad, /not a JWT/);
});
