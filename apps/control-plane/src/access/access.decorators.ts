import { applyDecorators, createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { Role } from './role.js';

export const REQUIRED_ROLE = 'fleetline:required-role';
export const PUBLIC_ROUTE = 'fleetline:public-route';

/**
 * Minimum role for a route, on the method or its controller (the method wins). Every route has
 * it or @Public(): one with neither is refused to everyone (ApiKeyGuard), and the RBAC matrix test fails.
 */
export const RequireRole = (role: Role) => SetMetadata(REQUIRED_ROLE, role);

/** No API key needed: health probes, device enrollment (token-authenticated), device downloads (device-authenticated). */
export const Public = () => applyDecorators(SetMetadata(PUBLIC_ROUTE, true), ApiExtension(PUBLIC_OPERATION, true));

/** Marks a public operation in the OpenAPI document until infra/http/openapi-document.ts turns it into its `security`. */
export const PUBLIC_OPERATION = 'x-fleetline-public';

/** What the guard attaches to the request. */
export interface Principal {
  kind: 'api-key';
  id: string;
  name: string;
  role: Role;
}

export interface RequestWithPrincipal {
  principal?: Principal;
}

/** The authenticated API key of the request (set by ApiKeyGuard). */
export const CurrentPrincipal = createParamDecorator((_data: unknown, context: ExecutionContext): Principal | undefined => {
  return context.switchToHttp().getRequest<RequestWithPrincipal>().principal;
});
