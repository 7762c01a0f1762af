import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { FleetCountsRepository } from './fleet-counts.repository.js';

/** How often the deltas are folded into fleet_counts; a read sums at most this long's worth of deltas. */
export const FLEET_COUNTS_COMPACT_EVERY_MS = 5_000;

/**
 * Folds the fleet count deltas every few seconds, on every replica (they take turns through an
 * advisory lock, so whichever replicas are up keep the delta table small). Nothing depends on
 * when it runs: a count is the same before and after a compaction.
 */
@Injectable()
export class FleetCountsCompactor implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('FleetCounts');
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastErrorLoggedAt = 0;

  constructor(private readonly counts: FleetCountsRepository) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.compactOnce().finally(() => (this.running = undefined));
    }, FLEET_COUNTS_COMPACT_EVERY_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async compactOnce(): Promise<void> {
    try {
      await this.counts.compact();
    } catch (err) {
      // Harmless (the deltas stay and are summed on read), and a database outage would log every 5 s.
      const now = Date.now();
      if (now - this.lastErrorLoggedAt < 60_000) return;
      this.lastErrorLoggedAt = now;
      this.logger.warn(`compacting the fleet counts failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
