import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA, SSE_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';
import { apiClient, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { PUBLIC_ROUTE, REQUIRED_ROLE } from './access.decorators.js';
import { ROLES, type Role, roleSatisfies } from './role.js';

interface Route {
  method: string;
  path: string;
  role?: Role;
  isPublic: boolean;
  sse: boolean;
  handler: string;
}

/**
 * Routes reachable without an API key. A new one must be added here on purpose: it is then
 * reviewed as public (device-authenticated, token-authenticated or harmless), not by accident.
 */
const PUBLIC_ROUTES = new Set([
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /',
  'GET /ui/*path',
  'POST /api/v1/enroll',
  'GET /api/v1/tuf/metadata/:file',
  'GET /api/v1/tuf/targets/:model/:version/:file',
]);

/** Every controller route of the running app, read from the same metadata Nest routes by. */
function discoverRoutes(t: TestApp): Route[] {
  const routes: Route[] = [];
  for (const module of t.app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const type = wrapper.metatype as (new (...args: unknown[]) => unknown) | null;
      if (!type) continue;
      const prefix = String(Reflect.getMetadata(PATH_METADATA, type) ?? '');
      const proto = type.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const fn = proto[name];
        if (name === 'constructor' || typeof fn !== 'function') continue;
        const methodPath = Reflect.getMetadata(PATH_METADATA, fn) as string | string[] | undefined;
        if (methodPath === undefined) continue;
        const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, fn) as RequestMethod];
        for (const p of Array.isArray(methodPath) ? methodPath : [methodPath]) {
          const path = `/${[prefix, p]
            .map((s) => s.replace(/^\/+|\/+$/g, ''))
            .filter(Boolean)
            .join('/')}`;
          routes.push({
            method,
            path,
            role: (Reflect.getMetadata(REQUIRED_ROLE, fn) ?? Reflect.getMetadata(REQUIRED_ROLE, type)) as Role | undefined,
            isPublic: Boolean(Reflect.getMetadata(PUBLIC_ROUTE, fn) ?? Reflect.getMetadata(PUBLIC_ROUTE, type)),
            sse: Boolean(Reflect.getMetadata(SSE_METADATA, fn)),
            handler: `${type.name}.${name}`,
          });
        }
      }
    }
  }
  return routes;
}

/** A concrete URL for a route pattern: parameters get a well-formed value nothing exists under. */
function concrete(path: string): string {
  return path
    .replace(/:id\b/g, '00000000-0000-4000-8000-000000000000')
    .replace(/:[A-Za-z]+/g, 'rbac-probe')
    .replace(/\*[A-Za-z]+/g, 'rbac-probe');
}

async function call(t: TestApp, route: Route, key?: string): Promise<number> {
  const controller = new AbortController();
  const res = await fetch(`${t.baseUrl}${concrete(route.path)}`, {
    method: route.method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(route.method === 'GET' ? {} : { 'content-type': 'application/json' }) },
    body: route.method === 'GET' || route.method === 'HEAD' ? undefined : '{}',
    signal: controller.signal,
  });
  // Streams stay open: the status line is the answer.
  controller.abort();
  return res.status;
}

describe('RBAC matrix of every route', () => {
  let t: TestApp;
  let routes: Route[];
  const keys = new Map<Role, string>();

  beforeAll(async () => {
    t = await startTestApp('pglite');
    routes = discoverRoutes(t);
    const admin = apiClient(t.baseUrl, t.adminKey);
    keys.set('admin', t.adminKey);
    for (const role of ['operator', 'viewer'] as const)
      keys.set(role, (await admin.post<{ key: string }>('/api/v1/api-keys', { name: `rbac-${role}`, role })).body.key);
  });

  afterAll(async () => {
    await t.close();
  });

  it('finds the routes', () => {
    // A sanity floor: the app has more than 40 controller routes.
    expect(routes.length).toBeGreaterThan(40);
  });

  it('has a declared role on every route that is not public, and only the reviewed routes are public', () => {
    const undeclared = routes.filter((r) => !r.isPublic && !r.role).map((r) => `${r.method} ${r.path} (${r.handler})`);
    expect(undeclared).toEqual([]);
    const publicRoutes = routes.filter((r) => r.isPublic).map((r) => `${r.method} ${r.path}`);
    expect(publicRoutes.filter((r) => !PUBLIC_ROUTES.has(r))).toEqual([]);
  });

  it('needs at least operator for anything that changes state', () => {
    const weakWrites = routes
      .filter((r) => !r.isPublic && !['GET', 'HEAD'].includes(r.method) && r.role && !roleSatisfies(r.role, 'operator'))
      .map((r) => `${r.method} ${r.path}`);
    expect(weakWrites).toEqual([]);
  });

  it('answers every route 401 without a key, 403 below its role and lets its role and above through', async () => {
    const mismatches: string[] = [];
    for (const route of routes.filter((r) => !r.isPublic)) {
      const anonymous = await call(t, route);
      if (anonymous !== 401) mismatches.push(`${route.method} ${route.path} without a key: ${anonymous}`);
      for (const role of ROLES) {
        const status = await call(t, route, keys.get(role));
        const allowed = roleSatisfies(role, route.role!);
        if (allowed && (status === 401 || status === 403)) mismatches.push(`${route.method} ${route.path} as ${role}: ${status}, expected through`);
        if (!allowed && status !== 403) mismatches.push(`${route.method} ${route.path} as ${role}: ${status}, expected 403`);
      }
    }
    expect(mismatches).toEqual([]);
  }, 120_000);
});
