import type { Logger } from '@nestjs/common';

/**
 * Logs at most one line per interval and says how many were suppressed in between, so a device
 * sending garbage at line rate cannot flood the log.
 */
export class RateLimitedLog {
  private last = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(message: string): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    const note = this.suppressed > 0 ? ` (${this.suppressed} similar messages suppressed)` : '';
    this.last = t;
    this.suppressed = 0;
    this.logger.warn(`${message}${note}`);
  }
}
