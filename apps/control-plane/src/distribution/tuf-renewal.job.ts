import { Injectable, Logger } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { TufRepositoryService } from './tuf-repository.service.js';

/** Checks every 10 minutes; timestamp (1 day) is renewed 12 h before expiry, snapshot (7 days) 3 days before. */
const CHECK_EVERY_MS = 10 * 60 * 1000;

/**
 * Keeps online-signed metadata from expiring. Every replica runs it; the advisory lock and the
 * re-check inside the transaction make concurrent runs sign at most one new version.
 */
@Injectable()
export class TufRenewalJob {
  private readonly logger = new Logger('TufRenewal');
  private running = false;

  constructor(private readonly tuf: TufRepositoryService) {}

  @Interval('tuf-renewal', CHECK_EVERY_MS)
  async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.tuf.renewExpiring();
    } catch (err) {
      this.logger.error(`renewing TUF metadata failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.running = false;
    }
  }
}
