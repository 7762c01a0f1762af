import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { orderMembers } from './planning/membership.js';
import type { RolloutDeviceRow } from './rollout.repository.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { seedDevices, seedModel } from './testing/rollout-fixtures.js';

const FUTURE = '2099-01-01T00:00:00Z';
const WAVES = [{ percent: 1, bakeSeconds: 600, successPercent: 95, failure: { percent: 5, minExecuted: 10 } }, { percent: 10 }, { percent: 100 }];

describe.each(databaseBackends())('rollout definitions on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;

  beforeAll(async () => {
    // 100,000 explicit device ids are ~2 MB of JSON, over the 1 MB default (docs/security.md): raised as an operator would.
    t = await startTestApp(backend, { HTTP_JSON_LIMIT_BYTES: String(8 * 1024 * 1024) });
    api = apiClient(t.baseUrl, t.adminKey);
    await seedModel(t, api, 'detector', [{ version: '2.1.0' }, { version: '3.0.0', compatibility: { hardwareClasses: ['jetson'] } }]);
  }, 180_000);
  afterAll(() => t.close());

  it('refuses bad definitions with 400 and unknown versions with 404', async () => {
    const base = { model: 'detector', version: '2.1.0', target: { tags: { region: 'nowhere' } }, waves: WAVES, startAt: FUTURE };
    const unknown = await api.post<{ code: string }>('/api/v1/rollouts', { ...base, version: '9.9.9' });
    expect([unknown.status, unknown.body.code]).toEqual([404, 'model-version-not-found']);
    expect((await api.post('/api/v1/rollouts', { ...base, model: 'nope' })).status).toBe(404);
    const bad: Record<string, unknown>[] = [
      { ...base, waves: [{ percent: 10 }, { percent: 5 }, { percent: 100 }] },
      { ...base, waves: [{ percent: 10 }, { percent: 50 }] },
      { ...base, waves: [] },
      { ...base, waves: [{ percent: 10, count: 4 }, { percent: 100 }] },
      { ...base, waves: [{ percent: 100, failure: { minExecuted: 3 } }] },
      { ...base, waves: [{ percent: 100, gates: [{ metric: 'latency_p95' }] }] },
      { ...base, waves: [{ percent: 100, gates: [{ metric: 'nonsense', max: 1 }] }] },
      { ...base, maintenanceWindows: [{ cron: 'whenever', durationSeconds: 600, timeZone: 'UTC' }] },
      { ...base, maintenanceWindows: [{ cron: '0 2 * * *', durationSeconds: 600, timeZone: 'Mars/Base' }] },
      { ...base, target: { inventory: { agentVersion: 'not a range' } } },
      { ...base, target: { deviceIds: ['ok', 'bad/id'] } },
      { ...base, target: { deviceIds: ['a'] }, dynamic: true },
      { ...base, endAt: '2000-01-01T00:00:00Z' },
      { ...base, surprise: true },
      { ...base, action: 'explode' },
    ];
    for (const body of bad) {
      const res = await api.post<{ code: string; message: unknown }>('/api/v1/rollouts', body);
      expect([res.status, JSON.stringify(body)]).toEqual([400, JSON.stringify(body)]);
    }
  });

  it('answers a rollout of 100,000 explicit device ids at once as preparing; the engine materialises it and runs it', async () => {
    const ids = await seedDevices(t, 'bulk-', 100_000, { tags: { fleet: 'bulk' } });
    // Seeding held this process's thread long enough for the server to drop the client's idle
    // keep-alive socket: a first request may meet the reset; the timed one below gets a live socket.
    await eventually(async () => ((await api.get('/healthz').catch(() => undefined))?.status === 200 ? true : undefined), 10_000, 'the API to answer');
    const started = Date.now();
    const res = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { deviceIds: [...ids, 'ghost-1', 'ghost-2'] },
      waves: WAVES,
      onFailure: 'pause',
    });
    const answeredMs = Date.now() - started;
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ state: 'preparing', targetCount: 0, unknownDeviceCount: null, waveCount: 3, waves: [] });
    expect(res.body.spec.target).toEqual({ deviceIdCount: 100_002 });
    // Issue #15: the target is 2 s (it was 6-19 s while the membership was materialised in the request). A control
    // plane in its own process answers in 0.7-1.2 s on a loaded 2-core machine; here client and server share one
    // process with jest, so the bound is looser, still far below inline materialisation. Judged on PostgreSQL only:
    // PGlite runs every query on this process's one thread, so the preparation the engine starts at once can hold
    // the answer up behind it (docs: rollouts/README.md, Preparation).
    if (backend === 'postgres') expect(answeredMs).toBeLessThanOrEqual(5_000);

    const running = await eventually(
      async () => {
        const r = (await api.get<RolloutDetail>(`/api/v1/rollouts/${res.body.id}`)).body;
        return r.state === 'running' && (r.waves[0]?.counts.notified ?? 0) > 0 ? r : undefined;
      },
      90_000,
      'the rollout to be prepared and to run',
    );
    expect(running).toMatchObject({ targetCount: 100_000, skippedCount: 0, currentWave: 0 });
    expect(running.waves.map((w) => w.size)).toEqual([1_000, 9_000, 90_000]);
    expect(running.waves.slice(1).map((w) => w.counts.pending)).toEqual([9_000, 90_000]);
    const events = (await api.get<{ items: { type: string; data: Record<string, unknown> }[] }>(`/api/v1/rollouts/${res.body.id}/events?limit=100`)).body.items;
    expect(events.filter((e) => e.type === 'prepared')).toHaveLength(1);
    expect(events.find((e) => e.type === 'prepared')?.data).toMatchObject({ targetCount: 100_000, unknownDeviceCount: 2, waveSizes: [1_000, 9_000, 90_000] });
    // Unknown ids are reported, not silently dropped.
    expect(events.find((e) => e.type === 'unknown-devices')?.data).toEqual({ count: 2, deviceIds: ['ghost-1', 'ghost-2'] });
    // Wave 0 is the first slice of the md5 order: anyone can recompute it.
    const expected = orderMembers(res.body.id, ids).slice(0, 100);
    const page = await api.get<{ items: RolloutDeviceRow[]; next: string }>(`/api/v1/rollouts/${res.body.id}/devices?wave=0&limit=100`);
    expect(page.body.items.map((d) => d.deviceId)).toEqual(expected);
    const next = await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${res.body.id}/devices?wave=0&limit=100&after=${page.body.next}`);
    expect(next.body.items.map((d) => d.deviceId)).toEqual(orderMembers(res.body.id, ids).slice(100, 200));
    const db = t.app.get(DataSource);
    expect(await db.query(`SELECT rollout_id FROM rollout_target_ids WHERE rollout_id = $1`, [res.body.id])).toEqual([]);
    expect((await api.post(`/api/v1/rollouts/${res.body.id}/cancel`)).status).toBe(200);
  }, 180_000);

  it('materialises an explicit list of up to 1,000 ids in the request', async () => {
    const ids = await seedDevices(t, 'small-', 1_000, { tags: { fleet: 'small' } });
    const res = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { deviceIds: [...ids.slice(0, 999), 'ghost-3'] },
      waves: [{ percent: 100 }],
      startAt: FUTURE,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ state: 'scheduled', targetCount: 999, unknownDeviceCount: 1, unknownDeviceIds: ['ghost-3'] });
    expect((await api.post(`/api/v1/rollouts/${res.body.id}/cancel`)).status).toBe(200);
  });

  it('ends a preparing rollout whose devices an equal-priority rollout holds as cancelled, with the conflict', async () => {
    const ids = await seedDevices(t, 'held-', 1_500, { tags: { fleet: 'held' } });
    const holder = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { fleet: 'held' } },
      waves: [{ percent: 100 }],
      startAt: FUTURE,
    });
    expect(holder.status).toBe(201);
    const late = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { deviceIds: ids },
      waves: [{ percent: 100 }],
    });
    expect([late.status, late.body.state]).toEqual([202, 'preparing']);
    const ended = await eventually(
      async () => {
        const r = (await api.get<RolloutDetail>(`/api/v1/rollouts/${late.body.id}`)).body;
        return r.state === 'preparing' ? undefined : r;
      },
      30_000,
      'preparation to end',
    );
    expect(ended).toMatchObject({ state: 'cancelled', targetCount: 0, waves: [] });
    expect(ended.finishedAt).not.toBeNull();
    expect(ended.stateReason).toMatch(/^preparation failed: devices of this target are already in active rollouts/);
    expect(ended.events.items.find((e) => e.type === 'preparation-failed')?.data).toMatchObject({
      code: 'rollout-conflict',
      conflictingRolloutIds: [holder.body.id],
    });
    const db = t.app.get(DataSource);
    expect(await db.query(`SELECT count(*)::int AS n FROM rollout_devices WHERE rollout_id = $1`, [late.body.id])).toEqual([{ n: 0 }]);
    await eventually(
      async () => ((await db.query(`SELECT 1 FROM rollout_target_ids WHERE rollout_id = $1`, [late.body.id])) as unknown[]).length === 0 || undefined,
      10_000,
      'the staged ids to be dropped',
    );
    expect((await api.post(`/api/v1/rollouts/${holder.body.id}/cancel`)).status).toBe(200);
  });

  it('skips devices incompatible with the version, with the reason, and never sends them', async () => {
    await seedDevices(t, 'rpi-', 5, { tags: { site: 'mixed' }, hardwareClass: 'rpi4' });
    await seedDevices(t, 'jet-', 3, { tags: { site: 'mixed' }, hardwareClass: 'jetson' });
    const res = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '3.0.0',
      target: { tags: { site: 'mixed' } },
      waves: [{ percent: 100 }],
      startAt: FUTURE,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ targetCount: 3, skippedCount: 5 });
    const skipped = await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${res.body.id}/devices?state=skipped`);
    expect(skipped.body.items).toHaveLength(5);
    expect(skipped.body.items.every((d) => d.deviceId.startsWith('rpi-') && d.wave === null && /incompatible-hardware/.test(d.reason ?? ''))).toBe(true);
    await api.post(`/api/v1/rollouts/${res.body.id}/cancel`);
  });

  it('selects by inventory ranges and current version', async () => {
    await seedDevices(t, 'old-agent-', 4, { tags: { pool: 'inv' }, agentVersion: '0.0.9' });
    await seedDevices(t, 'new-agent-', 6, { tags: { pool: 'inv' }, agentVersion: '0.3.1', runtimes: { simulated: '2.5.0' } });
    const byAgent = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'inv' }, inventory: { agentVersion: '>=0.2.0', runtime: { name: 'simulated', range: '^2' } } },
      waves: [{ percent: 100 }],
      startAt: FUTURE,
    });
    expect(byAgent.status).toBe(201);
    expect(byAgent.body.targetCount).toBe(6);
    await api.post(`/api/v1/rollouts/${byAgent.body.id}/cancel`);
    const notInstalled = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'inv' }, current: { notInstalled: true } },
      waves: [{ count: 2 }, { percent: 100 }],
      startAt: FUTURE,
    });
    expect(notInstalled.body.targetCount).toBe(10);
    expect(notInstalled.body.waves.map((w) => w.size)).toEqual([2, 8]);
    await api.post(`/api/v1/rollouts/${notInstalled.body.id}/cancel`);
  });

  it('answers 409 with the conflicting ids, unless a higher priority takes the devices explicitly', async () => {
    await seedDevices(t, 'conf-', 10, { tags: { group: 'conf' } });
    const body = { model: 'detector', version: '2.1.0', target: { tags: { group: 'conf' } }, waves: [{ percent: 100 }], startAt: FUTURE };
    const first = await api.post<CreatedRollout>('/api/v1/rollouts', body);
    expect(first.status).toBe(201);
    const clash = await api.post<{ code: string; details: { conflictingRolloutIds: string[] } }>('/api/v1/rollouts', body);
    expect(clash.status).toBe(409);
    expect(clash.body.code).toBe('rollout-conflict');
    expect(clash.body.details.conflictingRolloutIds).toEqual([first.body.id]);
    // Nothing of the refused rollout remains.
    const list = await api.get<{ items: { id: string }[] }>('/api/v1/rollouts?model=detector&state=scheduled&limit=1000');
    expect(list.body.items.filter((r) => r.id !== first.body.id).every((r) => r.id !== undefined)).toBe(true);

    const urgent = await api.post<CreatedRollout>('/api/v1/rollouts', { ...body, priority: 5 });
    expect(urgent.status).toBe(201);
    expect(urgent.body.targetCount).toBe(10);
    const loser = await api.get<RolloutDetail>(`/api/v1/rollouts/${first.body.id}`);
    expect(loser.body.counts).toEqual({ skipped: 10 });
    expect(loser.body.events.items.find((e) => e.type === 'devices-released')).toMatchObject({ data: { to: urgent.body.id, devices: 10 } });
    // Nothing left for it to do: the engine ends it (docs: "Nothing left").
    await eventually(
      async () => ((await api.get<RolloutDetail>(`/api/v1/rollouts/${first.body.id}`)).body.state === 'cancelled' ? true : undefined),
      10_000,
      'the loser to end',
    );
    const released = await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${first.body.id}/devices?limit=1`);
    expect(released.body.items[0]?.reason).toMatch(/released to higher-priority rollout/);
    // Once cancelled, the devices are free again.
    await api.post(`/api/v1/rollouts/${urgent.body.id}/cancel`);
    const again = await api.post<CreatedRollout>('/api/v1/rollouts', body);
    expect(again.status).toBe(201);
    await api.post(`/api/v1/rollouts/${again.body.id}/cancel`);
  });

  it('lists rollouts with filters and keyset pages, and refuses bad cursors', async () => {
    const page1 = await api.get<{ items: { id: string; state: string }[]; next: string | null }>('/api/v1/rollouts?limit=2');
    expect(page1.status).toBe(200);
    expect(page1.body.items).toHaveLength(2);
    const page2 = await api.get<{ items: { id: string }[] }>(`/api/v1/rollouts?limit=2&after=${page1.body.next}`);
    expect(page2.body.items.map((r) => r.id)).not.toContain(page1.body.items[0]!.id);
    const cancelled = await api.get<{ items: { state: string }[] }>('/api/v1/rollouts?state=cancelled');
    expect(cancelled.body.items.length).toBeGreaterThan(0);
    expect(cancelled.body.items.every((r) => r.state === 'cancelled')).toBe(true);
    expect((await api.get('/api/v1/rollouts?after=garbage')).status).toBe(400);
    expect((await api.get('/api/v1/rollouts?state=sideways')).status).toBe(400);
    expect((await api.get('/api/v1/rollouts/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await api.post('/api/v1/rollouts/00000000-0000-4000-8000-000000000000/pause')).status).toBe(404);
    const openApi = await api.get<{ paths: Record<string, unknown> }>('/api/openapi.json');
    expect(Object.keys(openApi.body.paths)).toEqual(expect.arrayContaining(['/api/v1/rollouts', '/api/v1/rollouts/{id}', '/api/v1/rollouts/{id}/stream']));
  });

  it('refuses operations that do not fit the state with 409', async () => {
    const [cancelled] = (await api.get<{ items: { id: string }[] }>('/api/v1/rollouts?state=cancelled&limit=1')).body.items;
    for (const op of ['pause', 'resume', 'advance', 'abort', 'retry', 'install']) {
      const res = await api.post<{ code: string }>(`/api/v1/rollouts/${cancelled!.id}/${op}`);
      expect([op, res.status]).toEqual([op, 409]);
    }
    const db = t.app.get(DataSource);
    const [{ n }] = (await db.query(`SELECT count(*)::int AS n FROM rollouts WHERE state = 'cancelled'`)) as { n: number }[];
    expect(n).toBeGreaterThan(0);
  });
});
