import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
import { TelemetryIngestRepository } from '../ingest/telemetry-ingest.repository.js';
import { TelemetryMaintenanceRepository, type ReferenceCaptureOptions } from './telemetry-maintenance.repository.js';
import { acceptedWindow, dayOfPartition, daysAround, expiredPartitions } from './telemetry-partitions.js';

export const REFERENCE_CAPTURE: ReferenceCaptureOptions = { minInferences: 1000, windowSeconds: 600, lookbackSeconds: 3600 };

/**
 * Scheduled upkeep of the telemetry store: partitions created ahead and dropped after the
 * retention, old rollups deleted, reference distributions captured for new versions. Every
 * step is idempotent, so several replicas may run it.
 */
@Injectable()
export class TelemetryMaintenanceService implements OnModuleInit {
  private readonly logger = new Logger('TelemetryMaintenance');
  private running = false;
  private capturing = false;

  constructor(
    private readonly repository: TelemetryMaintenanceRepository,
    private readonly ingestRepository: TelemetryIngestRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.maintainPartitions();
  }

  @Interval('telemetry-retention', 3_600_000)
  async retentionTick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.maintainPartitions();
    } catch (err) {
      this.logger.error(`telemetry retention failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.running = false;
    }
  }

  @Interval('telemetry-reference-capture', 30_000)
  async captureTick(): Promise<void> {
    if (this.capturing) return;
    this.capturing = true;
    try {
      await this.captureReferences();
    } catch (err) {
      this.logger.error(`reference capture failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.capturing = false;
    }
  }

  /** Creates today's and the next two days' partitions, drops those past the retention, deletes old rollups. */
  async maintainPartitions(now = new Date()): Promise<{ dropped: string[]; rollupsDeleted: number }> {
    await this.ingestRepository.ensurePartitions(daysAround(now, 0, 2));
    const dropped = expiredPartitions(await this.repository.listPartitions(), now, this.config.telemetryRetentionDays);
    for (const name of dropped) {
      await this.repository.dropPartition(name);
      const day = dayOfPartition(name);
      if (day) this.ingestRepository.forgetPartition(day);
    }
    const rollupsDeleted = await this.repository.deleteRollupsBefore(acceptedWindow(now, this.config.telemetryRetentionDays).from);
    if (dropped.length > 0 || rollupsDeleted > 0) this.logger.log(`telemetry retention: dropped ${dropped.length} partitions, ${rollupsDeleted} rollup rows`);
    return { dropped, rollupsDeleted };
  }

  captureReferences(options: ReferenceCaptureOptions = REFERENCE_CAPTURE): Promise<number> {
    return this.repository.captureReferences(options);
  }
}
