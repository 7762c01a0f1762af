import { Global, Module } from '@nestjs/common';
import { SourceLimits } from './source-limits.js';

/** Per-replica, per-source-address limits shared by the HTTP and MQTT entry points. */
@Global()
@Module({ providers: [SourceLimits], exports: [SourceLimits] })
export class RateLimitModule {}
