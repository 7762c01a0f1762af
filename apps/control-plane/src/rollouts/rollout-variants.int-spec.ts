import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { RolloutDeviceRow } from './rollout.repository.js';
import type { CreatedRollout } from './rollouts.service.js';
import { seedDevices } from './testing/rollout-fixtures.js';

const BUILDS = [
  { name: 'npu-int8', files: ['npu.bin'], compatibility: { accelerators: ['npu'] } },
  { name: 'cpu-fp32', files: ['cpu.bin'], compatibility: { hardwareClasses: ['rk3588', 'x86_64'] } },
];

/**
 * Rollouts plan with the build each device gets: the engine decides it again for every notified
 * batch (one grouped query), so a device whose inventory changed after the rollout was planned and
 * now fits no build is skipped with the reason before it is sent anything.
 */
describe.each(databaseBackends())('rollouts of a version with several builds on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    expect((await api.post('/api/v1/models', { name: 'seg' })).status).toBe(201);
    const form = new FormData();
    form.append('version', '1.0.0');
    form.append('metadata', JSON.stringify({ runtime: 'simulated', variants: BUILDS }));
    form.append('file', new Blob([randomBytes(64)]), 'npu.bin');
    form.append('file', new Blob([randomBytes(64)]), 'cpu.bin');
    const uploaded = await fetch(`${t.baseUrl}/api/v1/models/seg/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
    expect(uploaded.status).toBe(201);
  }, 180_000);
  afterAll(() => t.close());

  it('refuses an upload whose builds do not cover its files exactly', async () => {
    const upload = async (variants: unknown, files: string[]): Promise<{ status: number; body: { message?: string } }> => {
      const form = new FormData();
      form.append('version', `1.0.${Math.floor(Math.random() * 1e6)}`);
      form.append('metadata', JSON.stringify({ runtime: 'simulated', variants }));
      for (const f of files) form.append('file', new Blob([randomBytes(16)]), f);
      const res = await fetch(`${t.baseUrl}/api/v1/models/seg/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
      return { status: res.status, body: (await res.json()) as { message?: string } };
    };
    const stray = await upload(BUILDS, ['npu.bin', 'cpu.bin', 'extra.bin']);
    expect([stray.status, stray.body.message]).toEqual([400, 'file "extra.bin" is in no build of metadata.variants (npu-int8, cpu-fp32)']);
    const missing = await upload(BUILDS, ['npu.bin']);
    expect([missing.status, missing.body.message]).toEqual([400, 'metadata.variants lists files that were not uploaded: cpu-fp32/cpu.bin']);
    expect((await upload([...BUILDS, BUILDS[0]], ['npu.bin', 'cpu.bin'])).status).toBe(400);
    expect((await upload([{ name: 'Bad Name', files: ['npu.bin'] }], ['npu.bin'])).status).toBe(400);
  });

  it('sends each device its build and skips, at notification, a device whose inventory no longer fits any', async () => {
    await seedDevices(t, 'vn-npu-', 2, { tags: { site: 'var' }, hardwareClass: 'rk3588', accelerators: ['npu'] });
    await seedDevices(t, 'vn-cpu-', 2, { tags: { site: 'var' }, hardwareClass: 'x86_64' });
    const startAt = new Date(Date.now() + 3_000).toISOString();
    const res = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'seg',
      version: '1.0.0',
      target: { tags: { site: 'var' } },
      waves: [{ percent: 100 }],
      startAt,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ targetCount: 4, skippedCount: 0 });
    // Planned as fitting; by the time it is told, the device reports hardware no build runs on.
    await db.query(`UPDATE devices SET inventory = jsonb_set(inventory, '{hardwareClass}', '"mcu"'), hardware_class = 'mcu' WHERE id = 'vn-cpu-2'`);

    const rows = await eventually(
      async () => {
        const page = await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${res.body.id}/devices?limit=10`);
        // Claimed (notified) first, assigned a revision once the desired state is written.
        return page.body.items.every((d) => d.state === 'skipped' || d.revision !== null) ? page.body.items : undefined;
      },
      30_000,
      'every device assigned or skipped',
    );
    const byId = new Map(rows.map((d) => [d.deviceId, d]));
    expect(byId.get('vn-npu-1')).toMatchObject({ state: 'notified', variant: 'npu-int8' });
    expect(byId.get('vn-npu-2')).toMatchObject({ state: 'notified', variant: 'npu-int8' });
    expect(byId.get('vn-cpu-1')).toMatchObject({ state: 'notified', variant: 'cpu-fp32' });
    expect(byId.get('vn-cpu-2')).toMatchObject({
      state: 'skipped',
      variant: null,
      revision: null,
      reason: 'incompatible-hardware: no build fits: npu-int8 (needs npu); cpu-fp32 (hardware class mcu not in [rk3588, x86_64])',
    });
    // What each device was assigned: its build; the skipped one was assigned nothing.
    const assigned: { device_id: string; desired_variant: string | null }[] = await db.query(
      `SELECT device_id, desired_variant FROM device_models WHERE model = 'seg' ORDER BY device_id`,
    );
    expect(assigned).toEqual([
      { device_id: 'vn-cpu-1', desired_variant: 'cpu-fp32' },
      { device_id: 'vn-npu-1', desired_variant: 'npu-int8' },
      { device_id: 'vn-npu-2', desired_variant: 'npu-int8' },
    ]);
    const events = await api.get<{ items: { type: string; data: Record<string, unknown> }[] }>(`/api/v1/rollouts/${res.body.id}/events`);
    expect(events.body.items.find((e) => e.type === 'devices-incompatible')?.data).toMatchObject({ count: 1 });
    await api.post(`/api/v1/rollouts/${res.body.id}/cancel`);
  }, 60_000);
});
