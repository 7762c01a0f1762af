import { Global, Inject, Module, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { RedisDeviceRouter } from './cluster/redis-device-router.js';
import { EmbeddedBrokerGateway } from './embedded-broker.gateway.js';
import { ExternalBrokerGateway } from './external-broker.gateway.js';
import { MqttGateway } from './mqtt-gateway.js';
import { TransportSecurity } from '../tls/transport-security.js';

/**
 * Provides MqttGateway. The broker starts in onApplicationBootstrap, after every feature's
 * onModuleInit has registered its subscriptions' prerequisites (the embedded broker needs the
 * devices feature's authenticator before it accepts a single connection).
 */
@Global()
@Module({
  providers: [
    {
      provide: MqttGateway,
      inject: [APP_CONFIG, { token: TransportSecurity, optional: true }],
      useFactory: (config: AppConfig, security?: TransportSecurity): MqttGateway => {
        // With a stable REPLICA_ID the ingest connections resume their broker sessions after a restart,
        // so a message not acknowledged before a crash is delivered again (MQTT 3.1.1 §4.4). Without one,
        // sessions are clean: a session under a name never used again would queue messages forever.
        if (config.mqtt.kind === 'external')
          return new ExternalBrokerGateway({ ...config.mqtt, ...(config.replicaIdStable ? { sessionId: config.replicaId } : {}) });
        const { redisUrl, ...embedded } = config.mqtt;
        return new EmbeddedBrokerGateway({
          ...embedded,
          host: config.http.host,
          replicaId: config.replicaId,
          ...(security ? { security } : {}),
          ...(redisUrl ? { router: new RedisDeviceRouter(redisUrl) } : {}),
        });
      },
    },
  ],
  exports: [MqttGateway],
})
export class MqttModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(@Inject(MqttGateway) private readonly gateway: MqttGateway) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.gateway instanceof EmbeddedBrokerGateway || this.gateway instanceof ExternalBrokerGateway) await this.gateway.start();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.gateway instanceof EmbeddedBrokerGateway || this.gateway instanceof ExternalBrokerGateway) await this.gateway.stop();
  }
}
