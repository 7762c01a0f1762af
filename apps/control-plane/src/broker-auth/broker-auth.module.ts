import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { DeviceCredentialsRepository } from '../devices/auth/device-credentials.repository.js';
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
export class BrokerAuthModule implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly controller: BrokerAuthController,
  ) {}

  /**
   * Puts the broker checks in front of the app on its own HTTP server (same port, same
   * listen/close lifecycle): a request for one of their paths is answered here, every other one
   * goes to the Express app as before. See BrokerAuthController for why they skip the app's pipeline.
   */
  onModuleInit(): void {
    const server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    const app = server.listeners('request') as RequestListener[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (this.controller.dispatch(req, res)) return;
      for (const listener of app) listener.call(server, req, res);
    });
  }
}
