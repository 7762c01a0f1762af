import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createApp } from '../create-app.js';
import { loadConfig } from '../infra/config/config.schema.js';
import { apiClient, databaseBackends, eventually, startTestApp, type TestApp, uploadTestVersion } from '../testing/test-app.fixture.js';

const TIMEOUT_MS = 800;

/** Sends raw bytes and resolves with what the server answered and whether it closed the socket. */
function rawExchange(baseUrl: string, head: string, body: Buffer | string, waitMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  const { port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false, ms: Date.now() - started });
    }, waitMs);
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true, ms: Date.now() - started });
    });
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as NodeJS.ErrnoException).code === 'EPIPE') return;
      reject(err);
    });
    socket.write(head);
    if (body.length > 0) socket.write(body);
  });
}

describe.each(databaseBackends())('HTTP API limits, key handling and refusal audit on %s', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(backend, { HTTP_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS), AUDIT_REFUSALS_BURST: '5', AUDIT_REFUSALS_PER_SECOND: '0.01' });
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers a 2 MB JSON body 413 at once, before authentication and with it', async () => {
    const big = JSON.stringify({ name: 'x', description: 'y'.repeat(2 * 1024 * 1024) });
    for (const [path, key] of [
      ['/api/v1/enroll', undefined],
      ['/api/v1/models', undefined],
      ['/api/v1/models', t.adminKey],
    ] as const) {
      const started = Date.now();
      const res = await fetch(`${t.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: big,
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ code: 'payload-too-large' });
      expect(Date.now() - started).toBeLessThan(TIMEOUT_MS);
    }
    // A body within the limit is parsed and judged on its content.
    const within = await apiClient(t.baseUrl).post<{ code: string }>('/api/v1/enroll', { token: 'fle_unknown', name: 'z'.repeat(500_000) });
    expect(within.status).toBe(400);
    expect(within.body.code).not.toBe('payload-too-large');
  });

  it('cuts a request whose body never completes', async () => {
    const head = `POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nAuthorization: Bearer ${t.adminKey}\r\n\r\n`;
    const answer = await rawExchange(t.baseUrl, head, '{"name":', TIMEOUT_MS * 6);
    expect(answer.closed).toBe(true);
    expect(answer.text).toMatch(/^HTTP\/1\.1 408/);
    expect(answer.text).toContain('request-timeout');
    expect(answer.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
  });

  it('lets an upload take longer than the request timeout', async () => {
    await apiClient(t.baseUrl, t.adminKey).post('/api/v1/models', { name: 'slow-upload' });
    const boundary = 'fleetlineboundary';
    const part = (headers: string, content: string): string => `--${boundary}\r\n${headers}\r\n\r\n${content}\r\n`;
    const first =
      part('Content-Disposition: form-data; name="version"', '1.0.0') +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n`;
    const rest = `weights\r\n--${boundary}--\r\n`;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${t.baseUrl}/api/v1/models/slow-upload/versions`,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${t.adminKey}`,
            'content-type': `multipart/form-data; boundary=${boundary}`,
            'content-length': Buffer.byteLength(first + rest),
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(first);
      // The rest of the file comes well after the timeout.
      setTimeout(() => req.end(rest), TIMEOUT_MS * 2);
    });
    expect(status).toBe(201);
    await uploadTestVersion(t, 'slow-upload', '1.0.1');
  });

  it('takes ?key= on Server-Sent Events streams only, and keeps a stream open past the request timeout', async () => {
    const viewer = await apiClient(t.baseUrl, t.adminKey).post<{ key: string }>('/api/v1/api-keys', { name: 'sse-viewer', role: 'viewer' });
    for (const path of ['/api/v1/api-keys', '/api/v1/audit-log', '/api/v1/models', '/api/v1/fleet/summary']) {
      const refused = await fetch(`${t.baseUrl}${path}?key=${t.adminKey}`);
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { message: string }).message).toContain('Server-Sent Events streams only');
    }
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/api/v1/fleet/stream?key=${viewer.body.key}`, { signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const started = Date.now();
    let events = 0;
    // The summary comes every 2 s: the second one arrives well after TIMEOUT_MS.
    while (events < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      events += (
        Buffer.from(value)
          .toString('utf8')
          .match(/event: summary/g) ?? []
      ).length;
    }
    expect(events).toBe(2);
    expect(Date.now() - started).toBeGreaterThan(TIMEOUT_MS);
    controller.abort();
  });

  it('writes refused calls to the audit log, capped per source, and counts what it did not write', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const viewer = await admin.post<{ id: string; key: string }>('/api/v1/api-keys', { name: 'refused-viewer', role: 'viewer' });
    const metricBefore = await droppedMetric(t.baseUrl);
    // The earlier tests already refused a few calls from this address; the bucket holds 5 in all.
    expect((await apiClient(t.baseUrl, viewer.body.key).post('/api/v1/models', { name: 'nope' })).status).toBe(403);
    for (let i = 0; i < 20; i++) expect((await apiClient(t.baseUrl).delete(`/api/v1/api-keys/${viewer.body.id}`)).status).toBe(401);
    const log = await admin.get<{ items: { actor: string; action: string; status: number; details: Record<string, unknown> }[] }>('/api/v1/audit-log');
    const refused = log.body.items.filter((e) => e.details['refused'] === true);
    expect(refused.length).toBe(5);
    expect(refused.every((e) => typeof e.details['reason'] === 'string' && e.details['source'] !== undefined)).toBe(true);
    const forbidden = refused.find((e) => e.status === 403 && e.action === 'POST /api/v1/models');
    const unauthenticated = refused.filter((e) => e.status === 401);
    // Which five made it depends on the earlier tests; at least one of each kind is among them or was dropped.
    if (forbidden) expect(forbidden.actor).toBe(`api-key:${viewer.body.id}`);
    expect(unauthenticated.every((e) => e.actor === 'anonymous')).toBe(true);
    const metricAfter = await eventually(async () => {
      const v = await droppedMetric(t.baseUrl);
      return v >= metricBefore + 16 ? v : undefined;
    });
    expect(metricAfter).toBeGreaterThanOrEqual(metricBefore + 16);
  });
});

async function droppedMetric(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const match = /^fleetline_audit_refusals_dropped_total (\d+)/m.exec(text);
  if (!match) throw new Error('fleetline_audit_refusals_dropped_total missing from /metrics');
  return Number(match[1]);
}

describe.each(databaseBackends())('restart after revoking FLEET_ADMIN_KEY on %s', (backend) => {
  it('refuses to start with a clear message, and starts with a new key', async () => {
    const t = await startTestApp(backend);
    const env = {
      PORT: '0',
      HOST: '127.0.0.1',
      MQTT_PORT: '0',
      DATA_DIR: t.dataDir,
      DATABASE_URL: t.databaseUrl ?? '',
      LOG_LEVEL: 'error',
    };
    try {
      const admin = apiClient(t.baseUrl, t.adminKey);
      const second = await admin.post<{ key: string }>('/api/v1/api-keys', { name: 'second-admin', role: 'admin' });
      const keys = await admin.get<{ items: { id: string; name: string }[] }>('/api/v1/api-keys');
      const seeded = keys.body.items.find((k) => k.name === 'FLEET_ADMIN_KEY')!;
      expect((await admin.delete(`/api/v1/api-keys/${seeded.id}`)).status).toBe(204);
      await t.app.close();

      // Start-up (bootstrap) fails, the way main.ts's app.listen would.
      const refused = await createApp(loadConfig({ ...env, FLEET_ADMIN_KEY: t.adminKey }));
      await expect(refused.init()).rejects.toThrow(/FLEET_ADMIN_KEY was revoked .*set a new one/);
      await refused.close().catch(() => undefined);

      const fresh = `flk_replacement_${'r'.repeat(24)}`;
      const restarted = await createApp(loadConfig({ ...env, FLEET_ADMIN_KEY: fresh }));
      await restarted.listen(0, '127.0.0.1');
      const base = `http://127.0.0.1:${(restarted.getHttpServer().address() as { port: number }).port}`;
      expect((await apiClient(base, fresh).get('/api/v1/whoami')).body).toMatchObject({ role: 'admin' });
      expect((await apiClient(base, second.body.key).get('/api/v1/whoami')).status).toBe(200);
      expect((await apiClient(base, t.adminKey).get('/api/v1/whoami')).status).toBe(401);
      await restarted.close();
    } finally {
      // The first app is closed already; close() also drops the scratch database and data dir.
      await t.close().catch(() => undefined);
    }
  });
});
