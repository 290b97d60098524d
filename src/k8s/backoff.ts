// Retry delays for the API watches: exponential from 0.5 s, capped at 15 s, with jitter so
// the agents of a cluster do not retry in step against an API server coming back. Pure.

export const WATCH_BACKOFF = { firstMs: 500, capMs: 15_000 } as const;

/**
 * The wait before retry number `failures` (0 for the first retry after a failure):
 * min(cap, first x 2^failures), scaled by a factor in [0.5, 1) from `random` in [0, 1).
 */
export function watchBackoffMs(failures: number, random: number): number {
  const exponential = Math.min(WATCH_BACKOFF.capMs, WATCH_BACKOFF.firstMs * 2 ** Math.min(failures, 30));
  return Math.round(exponential * (0.5 + random / 2));
}
