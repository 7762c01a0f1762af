import { type MiddlewareConsumer, Module, type NestModule } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { DevicesModule } from '../devices/devices.module.js';
import { DownloadAdmissionModule } from '../distribution/download-admission.js';
import { FleetModule } from '../fleet/fleet.module.js';
import { TelemetryModule } from '../telemetry/telemetry.module.js';
import { FleetMetricsRepository } from './fleet-metrics.repository.js';
import { HttpMetricsMiddleware } from './http-metrics.middleware.js';
import { loadMetricsConfig, METRICS_CONFIG } from './metrics.config.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

/** GET /metrics (Prometheus) and the HTTP timing middleware; see docs/metrics.md for every metric. */
@Module({
  imports: [AccessModule, DevicesModule, FleetModule, TelemetryModule, DownloadAdmissionModule],
  controllers: [MetricsController],
  providers: [{ provide: METRICS_CONFIG, useFactory: () => loadMetricsConfig() }, FleetMetricsRepository, MetricsService, HttpMetricsMiddleware],
  exports: [MetricsService],
})
export class MetricsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // Every route, including the ones that match nothing (404s are timed as "unmatched").
    consumer.apply(HttpMetricsMiddleware).forRoutes('{*path}');
  }
}
