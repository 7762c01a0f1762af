import { Module } from '@nestjs/common';
import { DeviceCredentialsRepository } from '../devices/device-credentials.repository.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { BrokerAuthMetricsExporter } from './broker-auth-metrics.exporter.js';
import { BrokerAuthController } from './broker-auth.controller.js';
import { BrokerAuthMetrics } from './broker-auth.metrics.js';
import { BrokerAuthService } from './broker-auth.service.js';

/**
 * HTTP authentication and ACL endpoints for external brokers (EMQX 5, Mosquitto with
 * mosquitto-go-auth): see docs/deployment.md. DeviceCredentialVerifier comes from the global
 * DeviceAuthModule, so these checks share the embedded broker's credential cache.
 */
@Module({
  imports: [MetricsModule],
  providers: [DeviceCredentialsRepository, BrokerAuthMetrics, BrokerAuthService, BrokerAuthController, BrokerAuthMetricsExporter],
  exports: [BrokerAuthMetrics],
})
export class BrokerAuthModule {}
