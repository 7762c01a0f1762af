import { Global, Module } from '@nestjs/common';
import { SourceLimits } from './source-limits.js';

/** Per-source-address limits shared by the HTTP and MQTT entry points (in Redis across replicas with REDIS_URL). */
@Global()
@Module({ providers: [SourceLimits], exports: [SourceLimits] })
export class RateLimitModule {}
