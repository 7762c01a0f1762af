import { type CallHandler, type ExecutionContext, HttpException, Injectable, Logger, type NestInterceptor } from '@nestjs/common';
import type { Request, Response } from 'express';
import { type Observable, tap } from 'rxjs';
import { DomainException } from '../infra/http/domain.exception.js';
import type { RequestWithPrincipal } from './access.decorators.js';
import { AuditLogRepository } from './audit-log.repository.js';

/**
 * Writes every state-changing call (anything but GET/HEAD/OPTIONS) that got past the API-key
 * guard to the audit log, with its outcome, failures included. Calls the guard refused (401/403)
 * never reach an interceptor: the guard writes those itself, capped (RefusalAudit). Bodies are
 * not stored: they may carry secrets.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Audit');

  constructor(private readonly audit: AuditLogRepository) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<Request & RequestWithPrincipal>();
    if (['GET', 'HEAD', 'OPTIONS'].includes(request.method)) return next.handle();
    const response = context.switchToHttp().getResponse<Response>();
    const record = (status: number, error?: string): void => {
      const route = (request.route as { path?: string } | undefined)?.path ?? request.path;
      this.audit
        .append({
          actor: request.principal ? `api-key:${request.principal.id}` : 'anonymous',
          action: `${request.method} ${route}`,
          resource: request.originalUrl.split('?')[0] ?? request.originalUrl,
          status,
          details: { params: request.params, ...(error ? { error } : {}) },
        })
        .catch((err: unknown) => this.logger.error(`audit write failed: ${String(err)}`));
    };
    return next.handle().pipe(
      tap({
        complete: () => record(response.statusCode),
        error: (err: unknown) => {
          const status = err instanceof DomainException ? err.status : err instanceof HttpException ? err.getStatus() : 500;
          record(status, err instanceof Error ? err.message : String(err));
        },
      }),
    );
  }
}
