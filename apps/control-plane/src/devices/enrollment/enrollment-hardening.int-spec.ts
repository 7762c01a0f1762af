import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import type { DeviceCredentials } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';

interface TokenView {
  id: string;
  token: string;
  maxUses: number | null;
  uses: number;
  expiresAt: string | null;
  deviceTagKeys: string[];
}

const enroll = (t: TestApp, body: Record<string, unknown>) =>
  apiClient(t.baseUrl).post<DeviceCredentials & { code?: string; message?: string }>('/api/v1/enroll', body);

describe.each(databaseBackends())('enrollment tokens and device identity on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
  });

  afterAll(async () => {
    await t.close();
  });

  it('gives a token one use and a 7-day expiry unless told otherwise', async () => {
    const before = Date.now();
    const created = await api.post<TokenView>('/api/v1/enrollment-tokens', { name: 'defaults' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ maxUses: 1, uses: 0, deviceTagKeys: [] });
    const ttl = new Date(created.body.expiresAt!).getTime() - before;
    expect(ttl).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(ttl).toBeLessThan(7 * 86_400_000 + 60_000);
    expect((await enroll(t, { token: created.body.token, id: 'one-use-1' })).status).toBe(201);
    const second = await enroll(t, { token: created.body.token, id: 'one-use-2' });
    expect(second.status).toBe(403);
    expect(second.body.code).toBe('enrollment-token-used-up');

    const unlimited = await api.post<TokenView>('/api/v1/enrollment-tokens', { name: 'unlimited', unlimited: true, expiresInSeconds: 600 });
    expect(unlimited.body.maxUses).toBeNull();
    expect(new Date(unlimited.body.expiresAt!).getTime() - before).toBeLessThan(601_000);
    for (const id of ['many-1', 'many-2', 'many-3']) expect((await enroll(t, { token: unlimited.body.token, id })).status).toBe(201);

    const both = await api.post<{ code: string }>('/api/v1/enrollment-tokens', { name: 'both', unlimited: true, maxUses: 3 });
    expect(both.status).toBe(400);
    expect(both.body.code).toBe('invalid-enrollment-token');
    expect((await api.post('/api/v1/enrollment-tokens', { name: 'bad-keys', deviceTagKeys: ['no spaces'] })).status).toBe(400);
  });

  it('lets a device set only the tag keys its token allows, refusing the rest without using the token', async () => {
    const created = await api.post<TokenView>('/api/v1/enrollment-tokens', {
      name: 'tagged',
      tags: { fleet: 'hamburg', ring: 'stable' },
      deviceTagKeys: ['camera'],
      maxUses: 5,
    });
    expect(created.body.deviceTagKeys).toEqual(['camera']);
    // A device cannot put itself into a rollout's target by tagging itself.
    const refused = await enroll(t, { token: created.body.token, id: 'tag-1', tags: { camera: 'c1', canary: 'yes' } });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('enrollment-tag-not-allowed');
    expect(refused.body.message).toContain('canary');
    const plain = await api.post<TokenView>('/api/v1/enrollment-tokens', { name: 'no-device-tags' });
    const none = await enroll(t, { token: plain.body.token, id: 'tag-2', tags: { ring: 'canary' } });
    expect(none.status).toBe(403);
    expect(none.body.message).toContain('allowed: none');

    const ok = await enroll(t, { token: created.body.token, id: 'tag-1', tags: { camera: 'c1' } });
    expect(ok.status).toBe(201);
    expect((await api.get<{ tags: Record<string, string> }>('/api/v1/devices/tag-1')).body.tags).toEqual({ fleet: 'hamburg', ring: 'stable', camera: 'c1' });
    const list = await api.get<{ items: TokenView[] }>('/api/v1/enrollment-tokens');
    expect(list.body.items.find((i) => i.id === created.body.id)!.uses).toBe(1);
  });

  it('refuses the ids reserved for the control plane at enrollment and pre-registration', async () => {
    const created = await api.post<TokenView>('/api/v1/enrollment-tokens', { name: 'reserved', unlimited: true });
    for (const id of ['fleetline-cp-replica-1', 'Fleetline-CP-x', 'fleetline-cp']) {
      const enrolled = await enroll(t, { token: created.body.token, id });
      expect([id, enrolled.status, enrolled.body.code]).toEqual([id, 400, 'reserved-device-id']);
      const registered = await api.post<{ code: string }>('/api/v1/devices', { id });
      expect([id, registered.status, registered.body.code]).toEqual([id, 400, 'reserved-device-id']);
    }
    expect((await api.post('/api/v1/devices', { id: 'fleetline-camera-1' })).status).toBe(201);
  });
});

async function rateLimited(baseUrl: string, limit: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return Number(new RegExp(`^fleetline_rate_limited_total\\{limit="${limit}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

function connectOnce(url: string, id: string, password: string): Promise<{ connected: boolean; code?: number }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5000, clean: true });
    client.once('connect', () => {
      client.end(true);
      resolve({ connected: true });
    });
    client.once('error', (err) => {
      client.end(true);
      resolve({ connected: false, code: (err as Error & { code?: number }).code });
    });
  });
}

describe('per-source rate limits', () => {
  let t: TestApp;
  let api: ApiClient;

  beforeAll(async () => {
    t = await startTestApp('pglite', {
      ENROLL_RATE_BURST: '3',
      ENROLL_RATE_PER_SECOND: '0.01',
      DEVICE_AUTH_FAILURES_BURST: '3',
      DEVICE_AUTH_FAILURES_PER_SECOND: '0.01',
    });
    api = apiClient(t.baseUrl, t.adminKey);
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers enrollments over the limit 429 with Retry-After, and counts them', async () => {
    const token = (await api.post<TokenView>('/api/v1/enrollment-tokens', { name: 'limited', unlimited: true })).body.token;
    for (const id of ['rl-1', 'rl-2', 'rl-3']) expect((await enroll(t, { token, id })).status).toBe(201);
    const res = await fetch(`${t.baseUrl}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, id: 'rl-4' }),
    });
    expect(res.status).toBe(429);
    // Whole seconds until the bucket has a token again: at 0.01 a second, just under 100 s after the third.
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(99);
    expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(100);
    expect(((await res.json()) as { code: string }).code).toBe('rate-limited');
    expect(await rateLimited(t.baseUrl, 'enroll')).toBe(1);
  });

  it('limits failed device authentications per address across HTTP and MQTT', async () => {
    const device = (await api.post<DeviceCredentials>('/api/v1/devices', { id: 'auth-target' })).body;
    const basic = (secret: string) => ({ authorization: `Basic ${Buffer.from(`${device.deviceId}:${secret}`).toString('base64')}` });
    const metadata = `${t.baseUrl}/api/v1/tuf/metadata/timestamp.json`;
    expect((await fetch(metadata, { headers: basic(device.secret) })).status).toBe(200);
    // Three failures in all (two over HTTP, one over MQTT) use up the shared bucket.
    expect((await fetch(metadata, { headers: basic('wrong-1') })).status).toBe(401);
    expect((await fetch(metadata, { headers: basic('wrong-2') })).status).toBe(401);
    expect(await connectOnce(t.mqttUrl, device.deviceId, 'wrong-3')).toEqual({ connected: false, code: 4 });
    // Now even the right secret is refused until the bucket refills.
    const limited = await fetch(metadata, { headers: basic(device.secret) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await connectOnce(t.mqttUrl, device.deviceId, device.secret)).toEqual({ connected: false, code: 3 });
    expect(await rateLimited(t.baseUrl, 'device_auth_http')).toBe(1);
    expect(await rateLimited(t.baseUrl, 'device_auth_mqtt')).toBe(1);
  });
});
