import { type DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { AccessModule } from './access/access.module.js';
import { BrokerAuthModule } from './broker-auth/broker-auth.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { DevicesModule } from './devices/devices.module.js';
import { DistributionModule } from './distribution/distribution.module.js';
import { FleetModule } from './fleet/fleet.module.js';
import { HealthModule } from './health/health.module.js';
import { ConfigModule } from './infra/config/config.module.js';
import type { AppConfig } from './infra/config/config.schema.js';
import { DatabaseModule } from './infra/database/database.module.js';
import { MqttModule } from './infra/mqtt/mqtt.module.js';
import { TlsModule } from './infra/tls/tls.module.js';
import type { TransportSecurity } from './infra/tls/transport-security.js';
import { RateLimitModule } from './infra/rate-limit/rate-limit.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { ModelsModule } from './models/models.module.js';
import { RolloutsModule } from './rollouts/rollouts.module.js';
import { TelemetryModule } from './telemetry/telemetry.module.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, security?: TransportSecurity): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        TlsModule.forRoot(security),
        DatabaseModule,
        MqttModule,
        RateLimitModule,
        ScheduleModule.forRoot(),
        AccessModule,
        HealthModule,
        DevicesModule,
        FleetModule,
        ModelsModule,
        DistributionModule,
        RolloutsModule,
        TelemetryModule,
        DashboardModule,
        MetricsModule,
        BrokerAuthModule,
      ],
    };
  }
}
