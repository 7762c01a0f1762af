import { type DynamicModule, Global, Inject, Logger, Module, type OnApplicationBootstrap, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { configuredListeners, plainListenerWarning, plainPublicUrls } from './plain-listeners.js';
import { TransportSecurity } from './transport-security.js';

/**
 * Provides TransportSecurity when TLS is on (createApp builds it before Nest, because the HTTPS
 * server needs its certificate at creation), watches its files while the app runs, and says
 * loudly at start-up which listeners carry device traffic in clear beyond this machine.
 */
@Global()
@Module({})
export class TlsModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Tls');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(TransportSecurity) private readonly security?: TransportSecurity,
  ) {}

  static forRoot(security: TransportSecurity | undefined): DynamicModule {
    const providers = security ? [{ provide: TransportSecurity, useValue: security }] : [];
    return { module: TlsModule, providers, exports: providers.map((p) => p.provide) };
  }

  onApplicationBootstrap(): void {
    this.security?.start();
    const warning = plainListenerWarning(configuredListeners(this.config));
    if (warning) this.logger.warn(`\n${'!'.repeat(100)}\n${warning}\n${'!'.repeat(100)}`);
    const plain = plainPublicUrls(this.config);
    if (plain.length > 0) this.logger.warn(`TLS is on but devices are handed plain addresses (MQTT_PUBLIC_URL / PUBLIC_URL): ${plain.join(', ')}`);
  }

  onApplicationShutdown(): void {
    this.security?.stop();
  }
}
