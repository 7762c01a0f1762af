import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AccessErrorCode, AccessException } from './access.exception.js';
import { PUBLIC_ROUTE, REQUIRED_ROLE, type RequestWithPrincipal } from './access.decorators.js';
import { AccessService } from './access.service.js';
import { type Role, roleSatisfies } from './role.js';

/**
 * Global guard: every route needs `Authorization: Bearer <api key>` unless marked @Public().
 * Without @RequireRole, reads need viewer and writes need operator.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly access: AccessService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const request = context.switchToHttp().getRequest<Request & RequestWithPrincipal>();
    const key = bearerToken(request.headers.authorization) ?? queryKey(request);
    if (!key) throw new AccessException(AccessErrorCode.Unauthenticated, 'missing API key (Authorization: Bearer <key>)');
    const principal = await this.access.authenticate(key);
    const required = this.reflector.getAllAndOverride<Role>(REQUIRED_ROLE, targets) ?? (isRead(request.method) ? 'viewer' : 'operator');
    if (!roleSatisfies(principal.role, required)) {
      throw new AccessException(AccessErrorCode.Forbidden, `this call needs the ${required} role; the key has ${principal.role}`);
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

/**
 * EventSource cannot send headers, so Server-Sent Events streams (GET only) accept `?key=`.
 * Limited to reads so a key in a URL can never change anything.
 */
function queryKey(request: Request): string | undefined {
  if (!isRead(request.method)) return undefined;
  const key = request.query['key'];
  return typeof key === 'string' && key.length > 0 ? key : undefined;
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}
