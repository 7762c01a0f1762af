import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { deviceCredentialsSchema, type DeviceCredentials } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { buildDeviceListQuery, deviceCursor, parseDeviceListQuery, type RawDeviceListQuery } from './device-filter.js';

interface DeviceListBody {
  items: {
    id: string;
    tags: Record<string, string>;
    online: boolean;
    decommissionedAt: string | null;
    models: { model: string; activeVersion: string | null }[];
  }[];
  next: string | null;
}

const inventory = { hardwareClass: 'rpi4', os: 'linux', arch: 'arm64', agentVersion: '0.1.0', runtimes: { onnx: '1.20.0' } };

function basic(id: string, secret: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` };
}

describe.each(databaseBackends())('devices API on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let anonymous: ApiClient;
  let db: DataSource;

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    anonymous = apiClient(t.baseUrl);
    db = t.app.get(DataSource);
  });
  afterAll(() => t.close());

  describe('pre-registration', () => {
    it('answers credentials once and never shows the secret again', async () => {
      const created = await api.post<DeviceCredentials>('/api/v1/devices', { id: 'cam-1', name: 'dock', tags: { region: 'eu' } });
      expect(created.status).toBe(201);
      const credentials = deviceCredentialsSchema.parse(created.body);
      expect(credentials).toMatchObject({ deviceId: 'cam-1', mqtt: { url: t.mqttUrl, clientId: 'cam-1', username: 'cam-1' }, http: { baseUrl: t.baseUrl } });
      expect(credentials.tuf.metadataUrl).toBe(`${t.baseUrl}/api/v1/tuf/metadata`);
      expect(credentials.tuf.targetsUrl).toBe(`${t.baseUrl}/api/v1/tuf/targets`);
      expect(JSON.parse(credentials.tuf.root)).toHaveProperty('signed._type', 'root');

      const detail = await api.get<Record<string, unknown>>('/api/v1/devices/cam-1');
      expect(detail.status).toBe(200);
      expect(detail.body).toMatchObject({ id: 'cam-1', name: 'dock', tags: { region: 'eu' }, online: false, models: [] });
      const text = JSON.stringify(detail.body) + JSON.stringify((await api.get('/api/v1/devices')).body);
      expect(text).not.toContain(credentials.secret);
      expect(text).not.toMatch(/credential/i);

      // The secret works as HTTP Basic password on device routes.
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('cam-1', credentials.secret))).status).toBe(200);
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('cam-1', 'wrong-secret'))).status).toBe(401);
    });

    it('refuses a duplicate id with 409 and bad input with 400', async () => {
      expect((await api.post('/api/v1/devices', { id: 'cam-1' })).status).toBe(409);
      for (const body of [
        { id: '-bad' },
        { id: 'a/b' },
        { id: 'a+b' },
        { id: 'x'.repeat(129) },
        { id: 42 },
        {},
        { id: 'ok-1', tags: 'eu' },
        { id: 'ok-1', tags: { region: 5 } },
        { id: 'ok-1', name: 7 },
        { id: 'ok-1', extra: true },
      ]) {
        const res = await api.post<{ code: string }>('/api/v1/devices', body);
        expect([res.status, JSON.stringify(body)]).toEqual([400, JSON.stringify(body)]);
      }
    });

    it('needs an operator key', async () => {
      expect((await anonymous.post('/api/v1/devices', { id: 'cam-x' })).status).toBe(401);
      const viewer = await api.post<{ key: string }>('/api/v1/api-keys', { name: 'v', role: 'viewer' });
      expect((await apiClient(t.baseUrl, viewer.body.key).post('/api/v1/devices', { id: 'cam-x' })).status).toBe(403);
      expect((await apiClient(t.baseUrl, viewer.body.key).get('/api/v1/devices')).status).toBe(200);
    });

    it('documents the device endpoints in the OpenAPI document', async () => {
      const doc = await anonymous.get<{ paths: Record<string, unknown> }>('/api/openapi.json');
      expect(doc.status).toBe(200);
      for (const path of [
        '/api/v1/devices',
        '/api/v1/devices/{id}',
        '/api/v1/devices/{id}/models/{model}',
        '/api/v1/enroll',
        '/api/v1/enrollment-tokens',
        '/api/v1/fleet/summary',
      ]) {
        expect([path, path in doc.body.paths]).toEqual([path, true]);
      }
    });

    it('answers 404 for unknown devices', async () => {
      expect((await api.get('/api/v1/devices/nope')).status).toBe(404);
      expect((await api.patch('/api/v1/devices/nope', { tags: {} })).status).toBe(404);
      expect((await api.delete('/api/v1/devices/nope')).status).toBe(404);
      expect((await api.put('/api/v1/devices/nope/models/resnet', { version: '1.0.0' })).status).toBe(404);
    });
  });

  describe('enrollment', () => {
    let token: string;
    let tokenId: string;

    beforeAll(async () => {
      const created = await api.post<{ id: string; token: string; tags: Record<string, string>; uses: number }>('/api/v1/enrollment-tokens', {
        name: 'batch-1',
        tags: { site: 'hh', region: 'eu' },
        // The devices of this batch may set these tags themselves (the token's own still win).
        deviceTagKeys: ['region', 'line'],
        maxUses: 3,
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ tags: { site: 'hh', region: 'eu' }, uses: 0 });
      token = created.body.token;
      tokenId = created.body.id;
    });

    it('enrolls with a token: tags merged (token wins), inventory stored, id generated when absent', async () => {
      const res = await anonymous.post<DeviceCredentials>('/api/v1/enroll', { token, id: 'edge-1', tags: { region: 'us', line: '4' }, inventory });
      expect(res.status).toBe(201);
      expect(deviceCredentialsSchema.parse(res.body).deviceId).toBe('edge-1');
      const detail = await api.get<{ tags: Record<string, string>; inventory: unknown; hardwareClass: string; agentVersion: string }>('/api/v1/devices/edge-1');
      expect(detail.body.tags).toEqual({ site: 'hh', region: 'eu', line: '4' });
      expect(detail.body.inventory).toMatchObject(inventory);
      expect(detail.body).toMatchObject({ hardwareClass: 'rpi4', agentVersion: '0.1.0' });

      const generated = await anonymous.post<DeviceCredentials>('/api/v1/enroll', { token });
      expect(generated.status).toBe(201);
      expect(generated.body.deviceId).toMatch(/^dev-[0-9a-f]{20}$/);
    });

    it('refuses to re-enroll a live device id (no credential takeover) without using the token up', async () => {
      const res = await anonymous.post<{ code: string }>('/api/v1/enroll', { token, id: 'edge-1' });
      expect(res.status).toBe(409);
      const list = await api.get<{ items: { id: string; uses: number; token?: string }[] }>('/api/v1/enrollment-tokens');
      const view = list.body.items.find((i) => i.id === tokenId)!;
      expect(view.uses).toBe(2);
      expect(JSON.stringify(list.body)).not.toContain(token);
    });

    it('refuses a used-up token with 403', async () => {
      expect((await anonymous.post('/api/v1/enroll', { token, id: 'edge-3' })).status).toBe(201);
      const res = await anonymous.post<{ code: string; message: string }>('/api/v1/enroll', { token, id: 'edge-4' });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('enrollment-token-used-up');
    });

    it('refuses wrong, expired and revoked tokens', async () => {
      const wrong = await anonymous.post<{ code: string }>('/api/v1/enroll', { token: 'fle_this-token-does-not-exist' });
      expect(wrong.status).toBe(401);
      expect(wrong.body.code).toBe('enrollment-token-invalid');

      const expiring = await api.post<{ id: string; token: string }>('/api/v1/enrollment-tokens', { name: 'short', expiresInSeconds: 3600 });
      await db.query(`UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [expiring.body.id]);
      const expired = await anonymous.post<{ code: string; message: string }>('/api/v1/enroll', { token: expiring.body.token });
      expect(expired.status).toBe(403);
      expect(expired.body.code).toBe('enrollment-token-expired');

      const revokable = await api.post<{ id: string; token: string }>('/api/v1/enrollment-tokens', { name: 'to-revoke' });
      expect((await api.delete(`/api/v1/enrollment-tokens/${revokable.body.id}`)).status).toBe(204);
      expect((await api.delete(`/api/v1/enrollment-tokens/${revokable.body.id}`)).status).toBe(404);
      const revoked = await anonymous.post<{ code: string }>('/api/v1/enroll', { token: revokable.body.token });
      expect(revoked.status).toBe(403);
      expect(revoked.body.code).toBe('enrollment-token-revoked');
    });

    it('validates the enrollment request', async () => {
      expect((await anonymous.post('/api/v1/enroll', {})).status).toBe(400);
      expect((await anonymous.post('/api/v1/enroll', { token: 5 })).status).toBe(400);
      expect((await anonymous.post('/api/v1/enroll', { token, id: 'bad/id' })).status).toBe(400);
      expect((await anonymous.post('/api/v1/enroll', { token, inventory: { os: 'linux' } })).status).toBe(400);
      expect((await api.post('/api/v1/enrollment-tokens', { name: 'x', maxUses: 0 })).status).toBe(400);
      expect((await api.post('/api/v1/enrollment-tokens', { name: 'x', expiresInSeconds: 'soon' })).status).toBe(400);
      expect((await api.delete('/api/v1/enrollment-tokens/not-a-uuid')).status).toBe(400);
    });
  });

  describe('tags', () => {
    it('replaces by default and merges on request', async () => {
      await api.post('/api/v1/devices', { id: 'tagged-1', tags: { a: '1', b: '2' } });
      const merged = await api.patch<{ tags: Record<string, string> }>('/api/v1/devices/tagged-1', { tags: { b: '3', c: '4' }, tagsMode: 'merge' });
      expect(merged.status).toBe(200);
      expect(merged.body.tags).toEqual({ a: '1', b: '3', c: '4' });
      const replaced = await api.patch<{ tags: Record<string, string> }>('/api/v1/devices/tagged-1', { tags: { only: 'this' } });
      expect(replaced.body.tags).toEqual({ only: 'this' });
      expect((await api.patch('/api/v1/devices/tagged-1', { tags: { 'bad key': 'x' } })).status).toBe(400);
      expect((await api.patch('/api/v1/devices/tagged-1', { tagsMode: 'append' })).status).toBe(400);
    });
  });

  describe('listing 2,000 devices', () => {
    const N = 2000;
    beforeAll(async () => {
      // One set-based insert; every 3rd online, regions alternate, every 4th runs resnet 1.0.0, every 5th resnet 2.0.0.
      await db.query(
        `INSERT INTO devices (id, tags, online, credential_hash)
         SELECT 'seed-' || lpad(g::text, 5, '0'),
                jsonb_build_object('region', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'tier', CASE WHEN g % 10 = 0 THEN 'gold' ELSE 'std' END),
                g % 3 = 0, 'x'
           FROM generate_series(1, $1::int) g`,
        [N],
      );
      await db.query(
        `INSERT INTO device_models (device_id, model, active_version)
         SELECT 'seed-' || lpad(g::text, 5, '0'), 'resnet', CASE WHEN g % 4 = 0 THEN '1.0.0' ELSE '2.0.0' END
           FROM generate_series(1, $1::int) g WHERE g % 4 = 0 OR g % 5 = 0`,
        [N],
      );
    });

    async function all(query: string, limit = 137): Promise<string[]> {
      const ids: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 100; page++) {
        const res: { status: number; body: DeviceListBody } = await api.get<DeviceListBody>(
          `/api/v1/devices?${query}&limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`,
        );
        expect(res.status).toBe(200);
        expect(res.body.items.length).toBeLessThanOrEqual(limit);
        ids.push(...res.body.items.map((i) => i.id));
        after = res.body.next;
        if (!after) return ids;
      }
      throw new Error('too many pages');
    }

    const seeded = (pred: (g: number) => boolean): string[] =>
      Array.from({ length: N }, (_, i) => i + 1)
        .filter(pred)
        .map((g) => `seed-${String(g).padStart(5, '0')}`);

    it('pages through everything once, in id order, without duplicates or gaps', async () => {
      const ids = await all('q=seed-');
      expect(ids).toEqual(seeded(() => true));
      expect(new Set(ids).size).toBe(N);
    });

    it('filters by tags (AND), presence, model and version, id prefix', async () => {
      expect(await all('q=seed-&tag=region:eu', 500)).toEqual(seeded((g) => g % 2 === 0));
      expect(await all('tag=region:eu&tag=tier:gold', 1000)).toEqual(seeded((g) => g % 10 === 0));
      expect(await all('q=seed-&online=true', 1000)).toEqual(seeded((g) => g % 3 === 0));
      expect(await all('q=seed-&online=false&tag=tier:gold', 1000)).toEqual(seeded((g) => g % 3 !== 0 && g % 10 === 0));
      expect(await all('model=resnet&version=1.0.0', 100)).toEqual(seeded((g) => g % 4 === 0));
      expect(await all('model=resnet&version=2.0.0&online=true', 100)).toEqual(seeded((g) => g % 4 !== 0 && g % 5 === 0 && g % 3 === 0));
      expect(await all('model=resnet', 333)).toEqual(seeded((g) => g % 4 === 0 || g % 5 === 0));
      expect(await all('q=seed-01', 1000)).toEqual(seeded((g) => g >= 1000 && g <= 1999));
      expect(await all('tag=region:mars', 10)).toEqual([]);
    });

    it('refuses bad filters with 400', async () => {
      for (const q of ['limit=0', 'limit=1001', 'online=maybe', 'tag=region', 'after=garbage', 'version=1.0.0', 'model=UPPER', 'q=%25']) {
        const res = await api.get<{ code: string }>(`/api/v1/devices?${q}`);
        expect([q, res.status]).toEqual([q, 400]);
      }
    });

    it('summarises the fleet with counts per model version', async () => {
      const res = await api.get<{
        devices: { total: number; online: number; offline: number };
        models: { model: string; versions: { version: string; devices: number }[]; unassigned: number }[];
      }>('/api/v1/fleet/summary');
      expect(res.status).toBe(200);
      const live = Number(((await db.query(`SELECT count(*) AS n FROM devices WHERE decommissioned_at IS NULL`)) as { n: string }[])[0]!.n);
      const online = Number(((await db.query(`SELECT count(*) AS n FROM devices WHERE decommissioned_at IS NULL AND online`)) as { n: string }[])[0]!.n);
      expect(res.body.devices).toEqual({ total: live, online, offline: live - online });
      const resnet = res.body.models.find((m) => m.model === 'resnet')!;
      const v1 = seeded((g) => g % 4 === 0).length;
      const v2 = seeded((g) => g % 4 !== 0 && g % 5 === 0).length;
      expect(resnet.versions).toEqual([
        { version: '2.0.0', devices: v2 },
        { version: '1.0.0', devices: v1 },
      ]);
      expect(resnet.unassigned).toBe(live - v1 - v2);
    });

    it('plans every list filter and the summary without sequential scans', async () => {
      // Small tables may be scanned sequentially by choice; with seq scans off, a plan must still exist without them.
      const list = (query: RawDeviceListQuery) => buildDeviceListQuery(parseDeviceListQuery(query), 'd.id');
      const queries = [
        list({ tag: 'region:eu' }),
        list({ tag: ['region:eu', 'tier:gold'], after: deviceCursor('seed-00100') }),
        list({ online: 'true', after: deviceCursor('seed-00100') }),
        list({ model: 'resnet', version: '1.0.0', after: deviceCursor('seed-00100'), online: 'false' }),
        list({ model: 'resnet' }),
        list({ q: 'seed-01' }),
        list({ decommissioned: 'true' }),
        { sql: `SELECT online, count(*) AS n FROM devices WHERE decommissioned_at IS NULL GROUP BY online`, params: [] },
        { sql: `SELECT model, active_version, count(*) AS n FROM device_models GROUP BY model, active_version`, params: [] },
      ];
      await db.transaction(async (m) => {
        await m.query('SET LOCAL enable_seqscan = off');
        for (const { sql, params } of queries) {
          const plan = JSON.stringify(await m.query(`EXPLAIN ${sql}`, params));
          expect([sql, plan.includes('Seq Scan')]).toEqual([sql, false]);
        }
      });
    });
  });

  describe('decommission', () => {
    it('clears the credential, hides the device from lists and frees the id for a new enrollment', async () => {
      const created = await api.post<DeviceCredentials>('/api/v1/devices', { id: 'gone-1' });
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('gone-1', created.body.secret))).status).toBe(200);
      expect((await api.delete('/api/v1/devices/gone-1')).status).toBe(204);
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('gone-1', created.body.secret))).status).toBe(401);
      expect((await api.delete('/api/v1/devices/gone-1')).status).toBe(404);

      const live = await api.get<DeviceListBody>('/api/v1/devices?q=gone-');
      expect(live.body.items).toEqual([]);
      const gone = await api.get<DeviceListBody>('/api/v1/devices?q=gone-&decommissioned=true');
      expect(gone.body.items.map((i) => i.id)).toEqual(['gone-1']);
      expect(gone.body.items[0]!.decommissionedAt).not.toBeNull();
      const row = (await db.query(`SELECT credential_hash FROM devices WHERE id = 'gone-1'`)) as { credential_hash: string | null }[];
      expect(row[0]!.credential_hash).toBeNull();

      const again = await api.post<DeviceCredentials>('/api/v1/devices', { id: 'gone-1' });
      expect(again.status).toBe(201);
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('gone-1', again.body.secret))).status).toBe(200);
      expect((await anonymous.get('/api/v1/tuf/metadata/timestamp.json', basic('gone-1', created.body.secret))).status).toBe(401);
    });
  });
});
