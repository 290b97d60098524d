// Agent tokens checked with a TokenReview, at a cost to the API server that no client can
// raise. First the token's signature is checked here against the API server's own keys
// (service-account-jwt.ts): a token it did not issue, or issued for another account, is
// answered without a review, so forged tokens spend nothing. A token of the agent's
// account the API server signed is reviewed (its pod must still exist): answers are cached
// briefly (a deleted pod's token stops working within 10 s, and never outlives its expiry),
// failures too; a valid answer past half its life is reviewed again in the background, so a
// live agent's report never waits for a review; tokens never seen valid share a small review budget; and at most a few
// reviews are in flight. Where the keys cannot be read, the unverified claims rule out what
// cannot be ours and the budget bounds the rest; those claims are never trusted to accept.
import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { RateLimiter } from '../engine/rate-limiter.js';
import { describeError, type Kube } from '../k8s/client.js';
import type { KeySource } from './api-server-keys.js';
import { verifyToken } from './service-account-jwt.js';

export interface Identity {
  username: string;
  /** The node the token's pod runs on, when the token is bound to a pod. */
  node?: string;
}

export type Authenticator = (token: string) => Promise<Identity | null>;

/** The review budget is spent, or too many reviews are in flight: the caller should retry. */
export class ReviewThrottled extends Error {}

export interface ReviewLimits {
  /** How long an answer is kept: 10 s, and never past the token's own expiry. */
  cacheMs: number;
  /** TokenReviews at once. */
  maxInFlight: number;
  /** Reviews of tokens never seen valid: a burst, then so many per second. */
  unknownBurst: number;
  unknownPerSecond: number;
  /** Tokens remembered (answers, and tokens seen valid), each. */
  maxEntries: number;
}

export const DEFAULT_REVIEW_LIMITS: ReviewLimits = { cacheMs: 10_000, maxInFlight: 4, unknownBurst: 20, unknownPerSecond: 5, maxEntries: 10_000 };

const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** The unverified claims that can rule a token out: audience and expiry (epoch ms). */
export function unverifiedClaims(token: string): { audiences: string[]; expiresAt: number } | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { aud?: unknown; exp?: unknown };
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : [];
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) return null;
    return { audiences, expiresAt: claims.exp * 1000 };
  } catch {
    return null;
  }
}

/** Until when an answer about a token may be reused. */
export function cacheUntil(now: number, expiresAt: number, cacheMs: number): number {
  return Math.min(now + cacheMs, expiresAt);
}

export interface TokenCheck {
  audience: string;
  /** The account whose tokens are worth a review (system:serviceaccount:NS:NAME); others are answered locally. */
  subject: string;
  /** The API server's signing keys; without them every well-formed token goes to review. */
  keys?: KeySource;
}

export function tokenReviewAuthenticator(kube: Kube, check: TokenCheck, logger: Logger, limits: ReviewLimits = DEFAULT_REVIEW_LIMITS): Authenticator {
  const { audience } = check;
  const answers = new Map<string, { identity: Identity | null; until: number; refreshAt?: number; expiresAt?: number }>();
  /** Tokens a review accepted, until their expiry: they skip the budget for unknown tokens. */
  const known = new Map<string, number>();
  const pending = new Map<string, Promise<Identity | null>>();
  const budget = new RateLimiter(limits.unknownPerSecond * 60, Date.now(), limits.unknownBurst);
  let inFlight = 0;

  const remember = <V>(map: Map<string, V>, key: string, value: V) => {
    map.delete(key);
    map.set(key, value);
    if (map.size > limits.maxEntries) map.delete(map.keys().next().value as string);
  };

  const review = async (token: string, key: string, expiresAt: number): Promise<Identity | null> => {
    inFlight++;
    let result;
    try {
      result = await kube.auth.createTokenReview({ body: { spec: { token, audiences: [audience] } } });
    } catch (err) {
      logger.error({ err: describeError(err) }, 'TokenReview failed');
      throw err;
    } finally {
      inFlight--;
    }
    const status = result.status;
    const now = Date.now();
    let identity: Identity | null = null;
    if (status?.authenticated && status.user?.username && (status.audiences ?? []).includes(audience)) {
      const node = status.user.extra?.[NODE_NAME_EXTRA]?.[0];
      identity = { username: status.user.username, ...(node ? { node } : {}) };
      remember(known, key, expiresAt);
    }
    const until = cacheUntil(now, expiresAt, limits.cacheMs);
    // Reviewed again past half its life, unless the token expires before the answer does.
    remember(answers, key, { identity, until, ...(identity && until < expiresAt ? { refreshAt: now + limits.cacheMs / 2, expiresAt } : {}) });
    return identity;
  };

  /** Reviews `key`'s token again without anyone waiting; its answer replaces the cached one. */
  const refresh = (token: string, key: string, expiresAt: number): void => {
    const p = review(token, key, expiresAt).finally(() => pending.delete(key));
    p.catch(() => undefined); // logged by review; the cached answer holds until its time
    pending.set(key, p);
  };

  /**
   * What the token's signature and claims settle without a review: refused (null), an
   * identity that may not report (another account), or undefined when only a review can
   * tell (the agent's account), with the token's expiry.
   */
  const local = async (token: string, now: number): Promise<{ settled: Identity | null | undefined; expiresAt: number }> => {
    const keys = await check.keys?.current();
    if (!keys) {
      const claims = unverifiedClaims(token);
      if (!claims || !claims.audiences.includes(audience) || claims.expiresAt <= now) return { settled: null, expiresAt: now };
      return { settled: undefined, expiresAt: claims.expiresAt };
    }
    let v = verifyToken(token, keys.keys, { issuer: keys.issuer, audience, now });
    if (!v.ok && v.unknownKey) {
      const again = await check.keys!.refresh();
      if (again && again !== keys) v = verifyToken(token, again.keys, { issuer: again.issuer, audience, now });
    }
    if (!v.ok) return { settled: null, expiresAt: now };
    const { subject, expiresAt } = v.claims;
    // Signed by the API server: its subject is true, and another account's token may not
    // report (the report server refuses it). The agent's tokens are reviewed: their pod, or
    // their account, may be gone.
    if (subject !== check.subject) return { settled: { username: subject }, expiresAt };
    return { settled: undefined, expiresAt };
  };

  return async (token) => {
    const now = Date.now();
    const key = createHash('sha256').update(token).digest('hex');
    const hit = answers.get(key);
    if (hit && hit.until > now) {
      if (hit.refreshAt !== undefined && hit.refreshAt <= now && !pending.has(key) && inFlight < limits.maxInFlight) {
        hit.refreshAt = now + limits.cacheMs / 2; // a failed review is not retried at once
        refresh(token, key, hit.expiresAt!);
      }
      return hit.identity;
    }
    const { settled, expiresAt } = await local(token, now);
    if (settled !== undefined) {
      remember(answers, key, { identity: settled, until: settled ? cacheUntil(now, expiresAt, limits.cacheMs) : now + limits.cacheMs });
      return settled;
    }
    const claims = { expiresAt };
    const waiting = pending.get(key);
    if (waiting) return waiting;
    const wasValid = (known.get(key) ?? 0) > now;
    if (inFlight >= limits.maxInFlight || (!wasValid && !budget.take(now))) throw new ReviewThrottled('too many token reviews; retry');
    const p = review(token, key, claims.expiresAt).finally(() => pending.delete(key));
    pending.set(key, p);
    return p;
  };
}
