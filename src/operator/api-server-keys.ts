// The API server's service-account signing keys, as it publishes them for OIDC discovery
// (/.well-known/openid-configuration for the issuer, /openid/v1/jwks for the keys; RBAC:
// nonResourceURLs get, as the service-account-issuer-discovery ClusterRole grants). Read on
// first use, again every 10 minutes, and when a token names a key id they lack (a rotation),
// at most once every 10 s whatever forged key ids arrive.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { describeError, rawRequest, type Kube } from '../k8s/client.js';

export interface SigningKeys {
  issuer: string;
  /** By key id. */
  keys: ReadonlyMap<string, KeyObject>;
}

export interface KeySource {
  /** The keys, or null while the API server does not give them to us. */
  current(): Promise<SigningKeys | null>;
  /** Reads them again unless that was done within the last 10 s. */
  refresh(): Promise<SigningKeys | null>;
}

const MAX_AGE_MS = 10 * 60_000;
const MIN_REFRESH_MS = 10_000;

/** The keys of a JWKS document that make public keys; others (unknown types, no id) are skipped. */
export function keysOf(jwks: unknown): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  const list = (jwks as { keys?: unknown })?.keys;
  for (const jwk of Array.isArray(list) ? list : []) {
    const kid = (jwk as { kid?: unknown })?.kid;
    if (typeof kid !== 'string' || !kid) continue;
    try {
      out.set(kid, createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }));
    } catch {
      // not a key we can use
    }
  }
  return out;
}

export function apiServerKeys(kube: Kube, logger: Logger): KeySource {
  let held: SigningKeys | null = null;
  let readAt = -Infinity;
  let reading: Promise<SigningKeys | null> | null = null;
  let failing = false;

  const read = (): Promise<SigningKeys | null> =>
    (reading ??= (async () => {
      readAt = performance.now();
      try {
        const discovery = (await rawRequest(kube, 'GET', '/.well-known/openid-configuration')).body as { issuer?: unknown };
        const jwks = (await rawRequest(kube, 'GET', '/openid/v1/jwks', undefined, 'application/json', 'application/jwk-set+json')).body;
        const keys = keysOf(jwks);
        if (typeof discovery.issuer !== 'string' || !keys.size) throw new Error('no issuer or no usable key in the discovery documents');
        if (failing || !held) logger.info({ issuer: discovery.issuer, keys: keys.size }, 'service-account signing keys read: report tokens are checked locally before any TokenReview');
        failing = false;
        held = { issuer: discovery.issuer, keys };
      } catch (err) {
        if (!failing)
          logger.warn(
            { err: describeError(err) },
            'cannot read the API server\'s service-account signing keys (/openid/v1/jwks): report tokens are checked by TokenReview alone, within its budget',
          );
        failing = true;
      }
      return held;
    })().finally(() => (reading = null)));

  // Never a read per request: keys in hand are used while new ones are read, and without
  // keys (not readable) reading is tried again only every MIN_REFRESH_MS.
  const refresh = (): Promise<SigningKeys | null> => (performance.now() - readAt > MIN_REFRESH_MS ? read() : reading ?? Promise.resolve(held));
  return {
    current: () => {
      if (!held) return refresh();
      if (performance.now() - readAt > MAX_AGE_MS) void read();
      return Promise.resolve(held);
    },
    refresh,
  };
}
