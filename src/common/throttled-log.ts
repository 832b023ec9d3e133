import type { Logger } from '@nestjs/common';

/**
 * For failures that repeat per connection or per packet while a dependency is away: the first
 * one is logged at once, then at most one line per period says how many more there were.
 */
export class ThrottledLog {
  private last = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly logger: Pick<Logger, 'error'>,
    private readonly periodMs = 60_000,
  ) {}

  error(message: string): void {
    const now = Date.now();
    if (now - this.last < this.periodMs) {
      this.suppressed++;
      return;
    }
    const more = this.suppressed ? ` (and ${this.suppressed} more like it since the last report)` : '';
    this.last = now;
    this.suppressed = 0;
    this.logger.error(message + more);
  }
}
