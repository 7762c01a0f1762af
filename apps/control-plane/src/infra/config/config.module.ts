import { type DynamicModule, Global, Module } from '@nestjs/common';
import { APP_CONFIG } from './app-config.js';
import type { AppConfig } from './config.schema.js';

/** Provides the AppConfig that main.ts validated before Nest started. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: AppConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: APP_CONFIG, useValue: config }], exports: [APP_CONFIG] };
  }
}
