// Token bucket for new blocks: a circuit breaker against floods of (possibly forged) sources.
export class RateLimiter {
  private tokens: number;
  private last: number;

  /** `burst`: tokens held at most (a minute's worth unless given). */
  constructor(
    private perMinute: number,
    now: number,
    private burst = perMinute,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  configure(perMinute: number): void {
    this.perMinute = perMinute;
    this.burst = perMinute;
    this.tokens = Math.min(this.tokens, perMinute);
  }

  /** Takes a token, provided `reserve` tokens are left after it. */
  take(now: number, reserve = 0): boolean {
    // A clock stepping backwards adds nothing.
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    if (this.tokens < 1 + reserve) return false;
    this.tokens -= 1;
    return true;
  }
}
