// Agent tokens checked with a TokenReview, at a cost to the API server that no client can
// raise: answers are cached briefly (a deleted pod's token stops working within 10 s, and
// never outlives its expiry), failures too; a token that cannot be ours by its own claims
// is refused without asking; tokens never seen valid share a small review budget; and at
// most a few reviews are in flight. The claims read here are never trusted to accept.
import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { RateLimiter } from '../engine/rate-limiter.js';
import { describeError, type Kube } from '../k8s/client.js';

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

export function tokenReviewAuthenticator(kube: Kube, audience: string, logger: Logger, limits: ReviewLimits = DEFAULT_REVIEW_LIMITS): Authenticator {
  const answers = new Map<string, { identity: Identity | null; until: number }>();
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
    remember(answers, key, { identity, until: cacheUntil(now, expiresAt, limits.cacheMs) });
    return identity;
  };

  return async (token) => {
    const now = Date.now();
    const key = createHash('sha256').update(token).digest('hex');
    const hit = answers.get(key);
    if (hit && hit.until > now) return hit.identity;
    const claims = unverifiedClaims(token);
    // Not a token the API server could accept for us: no review needed to refuse it.
    if (!claims || !claims.audiences.includes(audience) || claims.expiresAt <= now) {
      remember(answers, key, { identity: null, until: now + limits.cacheMs });
      return null;
    }
    const waiting = pending.get(key);
    if (waiting) return waiting;
    const wasValid = (known.get(key) ?? 0) > now;
    if (inFlight >= limits.maxInFlight || (!wasValid && !budget.take(now))) throw new ReviewThrottled('too many token reviews; retry');
    const p = review(token, key, claims.expiresAt).finally(() => pending.delete(key));
    pending.set(key, p);
    return p;
  };
}
