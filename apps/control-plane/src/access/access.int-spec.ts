import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { apiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';

describe.each(databaseBackends())('API keys, roles and audit log on %s', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(backend);
  });

  afterAll(async () => {
    await t.close();
  });

  it('refuses calls without a key or with an unknown key', async () => {
    const anonymous = await apiClient(t.baseUrl).get('/api/v1/models');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ code: 'unauthenticated' });
    const wrong = await apiClient(t.baseUrl, 'flk_not-a-real-key-at-all-0000000000').get('/api/v1/models');
    expect(wrong.status).toBe(401);
  });

  it('lets each role do exactly what it may', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const viewerKey = await admin.post<{ key: string; role: string }>('/api/v1/api-keys', { name: 'dashboard', role: 'viewer' });
    const operatorKey = await admin.post<{ key: string }>('/api/v1/api-keys', { name: 'pipeline', role: 'operator' });
    expect(viewerKey.status).toBe(201);
    expect(viewerKey.body.key).toMatch(/^flk_/);

    const viewer = apiClient(t.baseUrl, viewerKey.body.key);
    const operator = apiClient(t.baseUrl, operatorKey.body.key);
    expect((await viewer.get('/api/v1/whoami')).body).toMatchObject({ name: 'dashboard', role: 'viewer' });
    expect((await viewer.get('/api/v1/models')).status).toBe(200);
    const refused = await viewer.post('/api/v1/models', { name: 'from-viewer' });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: 'forbidden' });
    expect((await operator.post('/api/v1/models', { name: 'from-operator' })).status).toBe(201);
    expect((await operator.post('/api/v1/api-keys', { name: 'x', role: 'admin' })).status).toBe(403);
    expect((await operator.get('/api/v1/audit-log')).status).toBe(403);
  });

  it('writes state-changing calls to the audit log with the key and the outcome', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const created = await admin.post<{ id: string }>('/api/v1/api-keys', { name: 'short-lived', role: 'viewer' });
    expect((await admin.delete(`/api/v1/api-keys/${created.body.id}`)).status).toBe(204);
    expect((await admin.delete(`/api/v1/api-keys/${created.body.id}`)).status).toBe(404);
    const log = await admin.get<{ items: { actor: string; action: string; status: number; resource: string }[] }>('/api/v1/audit-log');
    expect(log.status).toBe(200);
    const deletes = log.body.items.filter((e) => e.resource === `/api/v1/api-keys/${created.body.id}`);
    expect(deletes.map((e) => e.status).sort()).toEqual([204, 404]);
    expect(deletes[0]!.action).toBe('DELETE /api/v1/api-keys/:id');
    expect(deletes[0]!.actor).toMatch(/^api-key:/);
    // reads that were let through are not audited (refused ones are: http-hardening.int-spec.ts)
    expect(log.body.items.some((e) => e.action.startsWith('GET') && e.status < 400)).toBe(false);
  });

  it('revoked keys stop working', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const created = await admin.post<{ id: string; key: string }>('/api/v1/api-keys', { name: 'revoke-me', role: 'viewer' });
    const client = apiClient(t.baseUrl, created.body.key);
    expect((await client.get('/api/v1/whoami')).status).toBe(200);
    await admin.delete(`/api/v1/api-keys/${created.body.id}`);
    expect((await client.get('/api/v1/whoami')).status).toBe(401);
  });

  it('validates input with clear 4xx answers', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const badRole = await admin.post<{ message: string[] }>('/api/v1/api-keys', { name: 'x', role: 'superuser' });
    expect(badRole.status).toBe(400);
    expect(JSON.stringify(badRole.body.message)).toContain('role');
    const extra = await admin.post('/api/v1/api-keys', { name: 'x', role: 'viewer', isAdmin: true });
    expect(extra.status).toBe(400);
    expect((await admin.delete('/api/v1/api-keys/not-a-uuid')).status).toBe(400);
  });

  it('serves health probes and the OpenAPI document without a key', async () => {
    const anonymous = apiClient(t.baseUrl);
    expect((await anonymous.get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await anonymous.get('/readyz')).body).toMatchObject({ status: 'ready', database: 'ok' });
    const doc = await anonymous.get<{ openapi: string; paths: Record<string, unknown> }>('/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/devices', '/api/v1/models', '/api/v1/rollouts']));
  });
});
