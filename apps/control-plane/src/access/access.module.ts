import { Module } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AccessController } from './access.controller.js';
import { AccessService } from './access.service.js';
import { ApiKeyEntity } from './api-key.entity.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeyRepository } from './api-key.repository.js';
import { AuditLogEntity } from './audit-log.entity.js';
import { AuditLogRepository } from './audit-log.repository.js';
import { AuditInterceptor } from './audit.interceptor.js';
import { RefusalAudit } from './refusal-audit.js';

/** API keys with roles, the global guard that checks them, and the audit log of state-changing calls. */
@Module({
  imports: [TypeOrmModule.forFeature([ApiKeyEntity, AuditLogEntity])],
  controllers: [AccessController],
  providers: [
    AccessService,
    ApiKeyRepository,
    AuditLogRepository,
    RefusalAudit,
    { provide: APP_GUARD, useClass: ApiKeyGuard },
    { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
  ],
  exports: [AccessService, AuditLogRepository, RefusalAudit],
})
export class AccessModule {}
