import { describe, expect, it, jest } from '@jest/globals';
import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { RequireRole } from './access.decorators.js';
import type { AccessService } from './access.service.js';
import { ApiKeyGuard } from './api-key.guard.js';
import type { RefusalAudit } from './refusal-audit.js';

class Routes {
  undeclared(): void {}
  @RequireRole('viewer')
  declared(): void {}
}

function contextFor(handler: keyof Routes, headers: Record<string, string> = {}): ExecutionContext {
  const request = { method: 'GET', headers, query: {}, path: '/x', originalUrl: '/x', ip: '127.0.0.1', socket: {} };
  return {
    getType: () => 'http',
    getHandler: () => Routes.prototype[handler],
    getClass: () => Routes,
    switchToHttp: () => ({ getRequest: () => request }),
  } as unknown as ExecutionContext;
}

describe('ApiKeyGuard', () => {
  const access = { authenticate: jest.fn(async () => ({ kind: 'api-key', id: 'k1', name: 'admin', role: 'admin' })) } as unknown as AccessService;
  const record = jest.fn();
  const guard = new ApiKeyGuard(new Reflector(), access, { record } as unknown as RefusalAudit);

  it('refuses a route that declares no role, even to an admin key, and audits the refusal', async () => {
    await expect(guard.canActivate(contextFor('undeclared', { authorization: 'Bearer flk_admin' }))).rejects.toMatchObject({ status: 403 });
    expect(record).toHaveBeenCalledWith(expect.objectContaining({ status: 403, reason: expect.stringContaining('declares no role') }));
  });

  it('lets a declared route through with a good key', async () => {
    await expect(guard.canActivate(contextFor('declared', { authorization: 'Bearer flk_admin' }))).resolves.toBe(true);
  });
});
