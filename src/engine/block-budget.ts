// The block budget (response.maxBlocksPerMinute), split by what a source has shown, so that
// a flood of cheap forgeries never spends what a real scanner needs:
//  - verified: a completed handshake proves the source; no forged packet can spend this
//    budget, which has the full size of its own;
//  - unverified: one bucket of the full size, of which a source seen for the first time may
//    spend only the upper half; the lower half is kept for sources that come back after a
//    refusal. A flood of one-shot forged sources (a new random address with every packet)
//    keeps the upper half empty and never touches the rest, so a scanner is refused at most
//    once: its next probe is blocked. Pure.
import { RateLimiter } from './rate-limiter.js';

/** What a source has shown when its block is asked for. */
export type Evidence = 'verified' | 'returning' | 'first';

export class BlockBudget {
  private readonly verified: RateLimiter;
  private readonly unverified: RateLimiter;
  private perMinute: number;

  constructor(perMinute: number, now: number) {
    this.perMinute = perMinute;
    this.verified = new RateLimiter(perMinute, now);
    this.unverified = new RateLimiter(perMinute, now);
  }

  configure(perMinute: number): void {
    this.perMinute = perMinute;
    this.verified.configure(perMinute);
    this.unverified.configure(perMinute);
  }

  /** Tokens of the unverified bucket a first-seen source may not take (none when the budget is 1). */
  get kept(): number {
    return Math.floor(this.perMinute / 2);
  }

  take(now: number, evidence: Evidence): boolean {
    if (evidence === 'verified') return this.verified.take(now);
    return this.unverified.take(now, evidence === 'first' ? this.kept : 0);
  }
}
