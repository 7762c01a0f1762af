import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import type { FleetSummary } from '../fleet/fleet.service.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { RolloutDeviceRow } from './rollout.repository.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { type FakeAgent, startFakeAgent } from './testing/fake-agent.js';
import { seedModel } from './testing/rollout-fixtures.js';

const DEVICES = 3;
const MODEL = 'tracker';

/**
 * Devices that ran no version of a model before a rollout have the model unassigned when the
 * rollout is reverted; their agents remove it and report `removed`. The device records and the
 * fleet summary must then stop counting them on the removed version.
 */
describe.each(databaseBackends())('reverting devices that had no previous version on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  const agents: FakeAgent[] = [];

  const detail = async (id: string): Promise<RolloutDetail> => (await api.get<RolloutDetail>(`/api/v1/rollouts/${id}`)).body;
  const summaryOf = async (): Promise<FleetSummary['models'][number] | undefined> =>
    (await api.get<FleetSummary>('/api/v1/fleet/summary')).body.models.find((m) => m.model === MODEL);

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    await seedModel(t, api, MODEL, [{ version: '1.0.0' }]);
    for (let i = 1; i <= DEVICES; i++) {
      const created = await api.post<{ deviceId: string; secret: string }>('/api/v1/devices', { id: `rm-${i}`, tags: { pool: 'removal' } });
      agents.push(await startFakeAgent(t.mqttUrl, created.body));
    }
  }, 120_000);
  afterAll(async () => {
    for (const a of agents) await a.close();
    await t.close();
  });

  it('applies the removal reports: no ghost version in device_models or in /fleet/summary', async () => {
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: MODEL,
      version: '1.0.0',
      target: { tags: { pool: 'removal' } },
      waves: [{ percent: 100, bakeSeconds: 3600 }],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    await eventually(async () => ((await detail(id)).counts.committed === DEVICES ? true : undefined), 20_000, 'all committed');
    expect((await summaryOf())?.versions).toEqual([{ version: '1.0.0', devices: DEVICES }]);

    expect((await api.post(`/api/v1/rollouts/${id}/abort`)).status).toBe(200);
    const done = await eventually(
      async () => {
        const d = await detail(id);
        return d.state === 'rolled-back' ? d : undefined;
      },
      20_000,
      'rolled back',
    );
    expect(done.counts).toEqual({ 'rolled-back': DEVICES });
    const rows = (await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${id}/devices?limit=100`)).body.items;
    expect(rows.map((r) => r.reason)).toEqual(Array(DEVICES).fill('no previous version: model unassigned'));

    const summary = await eventually(
      async () => {
        const s = await summaryOf();
        return s && s.versions.length === 0 ? s : undefined;
      },
      20_000,
      'the summary to stop counting the removed version',
    );
    const total = (await api.get<FleetSummary>('/api/v1/fleet/summary')).body.devices.total;
    expect(summary.unassigned).toBe(total);
    expect(agents.every((a) => !a.active.has(MODEL))).toBe(true);

    // The rows stay (their revision keeps growing for the next assignment) and say what the device did.
    const models = (await t.app.get(DataSource).query(
      `SELECT device_id, desired_version, desired_revision, active_version, previous_version, report_state, report_revision, report_version, variant
           FROM device_models WHERE model = $1 ORDER BY device_id`,
      [MODEL],
    )) as Record<string, unknown>[];
    expect(models).toHaveLength(DEVICES);
    for (const m of models) {
      expect(m).toMatchObject({
        desired_version: null,
        active_version: null,
        previous_version: null,
        report_state: 'removed',
        report_version: '1.0.0',
        variant: null,
      });
      expect(String(m['report_revision'])).toBe(String(m['desired_revision']));
    }

    // A later assignment starts from there like on any device.
    expect((await api.put(`/api/v1/devices/rm-1/models/${MODEL}`, { version: '1.0.0' })).status).toBe(200);
    await eventually(() => (agents[0]!.active.get(MODEL) === '1.0.0' ? true : undefined), 10_000, 'rm-1 assigned again');
    await eventually(async () => ((await summaryOf())?.versions[0]?.devices === 1 ? true : undefined), 10_000, 'the summary to count the new assignment');
  });
});
