/**
 * A token bucket refilled lazily from timestamps: no timer and no allocation per message. Its
 * capacity is one second's worth of the rate, so a burst of `rate` messages passes at once.
 * The balance may go negative: a caller over the budget takes a token on credit and is told how
 * long to wait until that debt is paid, which keeps every waiter in arrival order.
 */
export class TokenBucket {
  private tokens = 0;
  /** -Infinity: the first take finds the bucket full */
  private last = -Infinity;

  /** Takes one token at `now` (ms) for a budget of `rate` per second; returns ms to wait (0: go). */
  take(now: number, rate: number): number {
    const refilled = this.tokens + ((now - this.last) * rate) / 1000;
    this.tokens = (refilled < rate ? refilled : rate) - 1;
    this.last = now;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / rate);
  }
}
