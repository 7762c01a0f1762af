import { type MiddlewareConsumer, Module, type NestModule, RequestMethod } from '@nestjs/common';
import { DeviceCredentialsRepository } from '../devices/device-credentials.repository.js';
import { HttpMetricsMiddleware } from '../metrics/http-metrics.middleware.js';
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
export class BrokerAuthModule implements NestModule {
  constructor(private readonly controller: BrokerAuthController) {}

  configure(consumer: MiddlewareConsumer): void {
    // POST-bound middleware, mounted ahead of every controller route. The request timing runs
    // first here (these handlers answer and end the chain, so the app-wide timing never sees them).
    for (const { path, handler } of this.controller.routes()) consumer.apply(HttpMetricsMiddleware, handler).forRoutes({ path, method: RequestMethod.POST });
  }
}
