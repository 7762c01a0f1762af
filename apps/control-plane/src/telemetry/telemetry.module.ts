import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { HealthGateService } from './gates/health-gate.contract.js';
import { RollupHealthGateService } from './gates/health-gate.service.js';
import { TelemetryController } from './telemetry.controller.js';
import { TelemetryIngestMetrics } from './ingest/telemetry-ingest.metrics.js';
import { TelemetryIngestRepository } from './ingest/telemetry-ingest.repository.js';
import { ShadowIngestRepository } from './ingest/shadow-ingest.repository.js';
import { DEFAULT_TELEMETRY_BATCH_OPTIONS, TELEMETRY_BATCH_OPTIONS, TelemetryIngestService } from './ingest/telemetry-ingest.service.js';
import { TelemetryMaintenanceRepository } from './maintenance/telemetry-maintenance.repository.js';
import { TelemetryMaintenanceService } from './maintenance/telemetry-maintenance.service.js';
import { TelemetryQueryRepository } from './telemetry-query.repository.js';
import { TelemetryQueryService } from './telemetry-query.service.js';

/**
 * Model telemetry: MQTT ingestion into partitioned raw samples and per-minute rollups, the
 * viewer API, drift references, retention, and the health gates rollouts consult.
 */
@Module({
  controllers: [TelemetryController],
  providers: [
    TelemetryIngestMetrics,
    {
      provide: TELEMETRY_BATCH_OPTIONS,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({ ...DEFAULT_TELEMETRY_BATCH_OPTIONS, ...config.telemetryBatch }),
    },
    TelemetryIngestRepository,
    ShadowIngestRepository,
    TelemetryIngestService,
    TelemetryQueryRepository,
    TelemetryQueryService,
    TelemetryMaintenanceRepository,
    TelemetryMaintenanceService,
    { provide: HealthGateService, useClass: RollupHealthGateService },
  ],
  exports: [HealthGateService, TelemetryIngestMetrics, TelemetryIngestService],
})
export class TelemetryModule {}
