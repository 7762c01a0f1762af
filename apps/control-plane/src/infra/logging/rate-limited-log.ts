import type { Logger } from '@nestjs/common';

/**
 * Logs at most one line per key per interval and says how many were suppressed, so a
 * misbehaving device (or thousands of them) cannot flood the log with bad payloads.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { until: number; suppressed: number }>();

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, message: string): void {
    const now = this.now();
    const window = this.windows.get(key);
    if (window && window.until > now) {
      window.suppressed++;
      return;
    }
    const suppressed = window?.suppressed ?? 0;
    this.windows.delete(key);
    if (this.windows.size >= this.maxKeys) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
    this.windows.set(key, { until: now + this.intervalMs, suppressed: 0 });
    this.logger.warn(suppressed > 0 ? `${message} (${suppressed} similar suppressed)` : message);
  }
}
