// A ServiceAccount token checked locally, as the API server would check its signature: the
// JWT's signature against the API server's own public keys (its JWKS), then the claims that
// can rule it out (issuer, audience, expiry, not-before). A token that passes is one the API
// server issued; whether its pod still exists is the TokenReview's to say. Pure: keys and
// time are given.
import { verify, type KeyObject } from 'node:crypto';

export interface TokenClaims {
  /** system:serviceaccount:NS:NAME */
  subject: string;
  audiences: string[];
  /** Epoch ms. */
  expiresAt: number;
  /** The node of the pod the token is bound to, when the API server says so (Kubernetes 1.30 on). */
  node?: string;
  /** The pod the token is bound to, if any. */
  pod?: string;
}

export type Verification =
  | { ok: true; claims: TokenClaims }
  /** `unknownKey`: signed with a key id the API server's keys lack (they may have been rotated). */
  | { ok: false; reason: string; unknownKey?: boolean };

export interface Expected {
  issuer: string;
  audience: string;
  now: number;
}

/** Clock difference tolerated on not-before, as the API server allows. */
const SKEW_MS = 60_000;

const ALGORITHMS: Record<string, { hash: string; key: 'rsa' | 'ec'; p1363?: boolean }> = {
  RS256: { hash: 'sha256', key: 'rsa' },
  RS384: { hash: 'sha384', key: 'rsa' },
  RS512: { hash: 'sha512', key: 'rsa' },
  ES256: { hash: 'sha256', key: 'ec', p1363: true },
  ES384: { hash: 'sha384', key: 'ec', p1363: true },
  ES512: { hash: 'sha512', key: 'ec', p1363: true },
};

const SEGMENT = /^[A-Za-z0-9_-]+$/;

function decode(segment: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** Checks `token` against the API server's keys (by key id) and what a token for us must claim. */
export function verifyToken(token: string, keys: ReadonlyMap<string, KeyObject>, expected: Expected): Verification {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) return { ok: false, reason: 'not a JWT' };
  const header = decode(parts[0]!);
  const payload = decode(parts[1]!);
  if (!header || !payload) return { ok: false, reason: 'not a JWT' };
  const algorithm = ALGORITHMS[String(header.alg)];
  if (!algorithm) return { ok: false, reason: `signature algorithm ${JSON.stringify(header.alg)} is not one the API server uses` };
  const kid = text(header.kid);
  const candidates = kid !== undefined ? [keys.get(kid)].filter((k): k is KeyObject => k !== undefined) : [...keys.values()];
  if (!candidates.length) return { ok: false, reason: `no API server key has id ${JSON.stringify(kid)}`, unknownKey: true };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2]!, 'base64url');
  const good = candidates.some(
    (key) => key.asymmetricKeyType === algorithm.key && verify(algorithm.hash, signed, algorithm.p1363 ? { key, dsaEncoding: 'ieee-p1363' } : key, signature),
  );
  if (!good) return { ok: false, reason: 'bad signature' };
  if (payload.iss !== expected.issuer) return { ok: false, reason: `issuer ${JSON.stringify(payload.iss)} is not the API server's` };
  const audiences = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a): a is string => typeof a === 'string') : [];
  if (!audiences.includes(expected.audience)) return { ok: false, reason: `not for audience ${expected.audience}` };
  if (typeof payload.exp !== 'number' || payload.exp * 1000 <= expected.now) return { ok: false, reason: 'expired' };
  if (typeof payload.nbf === 'number' && payload.nbf * 1000 > expected.now + SKEW_MS) return { ok: false, reason: 'not valid yet' };
  const subject = text(payload.sub);
  if (!subject) return { ok: false, reason: 'no subject' };
  const k8s = (typeof payload['kubernetes.io'] === 'object' && payload['kubernetes.io'] !== null ? payload['kubernetes.io'] : {}) as Record<string, { name?: unknown } | undefined>;
  const node = text(k8s.node?.name);
  const pod = text(k8s.pod?.name);
  return { ok: true, claims: { subject, audiences, expiresAt: payload.exp * 1000, ...(node ? { node } : {}), ...(pod ? { pod } : {}) } };
}
