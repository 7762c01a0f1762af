import { type CanActivate, type ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { SSE_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AccessErrorCode, AccessException } from './access.exception.js';
import { PUBLIC_ROUTE, REQUIRED_ROLE, type RequestWithPrincipal } from './access.decorators.js';
import { AccessService } from './access.service.js';
import { RefusalAudit } from './refusal-audit.js';
import { type Role, roleSatisfies } from './role.js';

/**
 * Global guard: every route needs `Authorization: Bearer <api key>` unless marked @Public(), and
 * every route declares its role (@RequireRole on the method or the controller). A route that
 * declares neither is refused to everyone: deny by default, so a forgotten decorator cannot open
 * a route (rbac-matrix.int-spec.ts fails on it too). Refusals are audited (RefusalAudit).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly logger = new Logger('Access');

  constructor(
    private readonly reflector: Reflector,
    private readonly access: AccessService,
    private readonly refusals: RefusalAudit,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const request = context.switchToHttp().getRequest<Request & RequestWithPrincipal>();
    const refuse = (err: AccessException, actor = 'anonymous'): never => {
      this.refusals.record({
        actor,
        method: request.method,
        route: (request.route as { path?: string } | undefined)?.path ?? request.path,
        resource: request.originalUrl.split('?')[0] ?? request.originalUrl,
        status: err.status,
        reason: err.message,
        source: request.ip ?? request.socket.remoteAddress ?? 'unknown',
      });
      throw err;
    };
    const required = this.reflector.getAllAndOverride<Role | undefined>(REQUIRED_ROLE, targets);
    if (!required) {
      this.logger.error(`${request.method} ${request.path}: route declares no role (@RequireRole or @Public); refused`);
      return refuse(new AccessException(AccessErrorCode.Forbidden, 'this route declares no role and is refused to everyone'));
    }
    // EventSource cannot send headers, so Server-Sent Events routes (and only those) take `?key=`:
    // anywhere else a key in a URL would end up in proxy and browser logs for nothing.
    const key = bearerToken(request.headers.authorization) ?? (this.reflector.get<boolean>(SSE_METADATA, context.getHandler()) ? queryKey(request) : undefined);
    if (!key) {
      const hint = typeof request.query['key'] === 'string' ? ' (?key= is accepted on Server-Sent Events streams only)' : '';
      return refuse(new AccessException(AccessErrorCode.Unauthenticated, `missing API key (Authorization: Bearer <key>)${hint}`));
    }
    let principal;
    try {
      principal = await this.access.authenticate(key);
    } catch (err) {
      if (err instanceof AccessException) return refuse(err);
      throw err;
    }
    if (!roleSatisfies(principal.role, required)) {
      return refuse(
        new AccessException(AccessErrorCode.Forbidden, `this call needs the ${required} role; the key has ${principal.role}`),
        `api-key:${principal.id}`,
      );
    }
    request.principal = principal;
    return true;
  }
}

function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/** `?key=` of a GET (an SSE stream is always one), so a key in a URL can never change anything. */
function queryKey(request: Request): string | undefined {
  if (request.method !== 'GET') return undefined;
  const key = request.query['key'];
  return typeof key === 'string' && key.length > 0 ? key : undefined;
}
