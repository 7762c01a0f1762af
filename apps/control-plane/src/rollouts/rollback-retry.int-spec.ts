import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { topics } from '@fleetline/protocol';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { RolloutDeviceRow, RolloutEventRow } from './rollout.repository.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { type FakeAgent, startFakeAgent } from './testing/fake-agent.js';
import { injectPublishFaults, type PublishFaults } from './testing/failing-publishes.js';
import { seedModel } from './testing/rollout-fixtures.js';

const DEVICES = 3;
const FAILED_ATTEMPTS = 2;

describe.each(databaseBackends())('abort with a transient publish failure on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let faults: PublishFaults;
  const agents: FakeAgent[] = [];

  const detail = async (id: string): Promise<RolloutDetail> => (await api.get<RolloutDetail>(`/api/v1/rollouts/${id}`)).body;
  const events = async (id: string): Promise<RolloutEventRow[]> =>
    (await api.get<{ items: RolloutEventRow[] }>(`/api/v1/rollouts/${id}/events?limit=1000`)).body.items.reverse();
  const members = async (id: string): Promise<RolloutDeviceRow[]> =>
    (await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${id}/devices?limit=100`)).body.items;

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    faults = injectPublishFaults(t.app.get(MqttGateway));
    await seedModel(t, api, 'detector', [{ version: '2.1.0' }, { version: '2.2.0' }]);
    for (let i = 1; i <= DEVICES; i++) {
      const created = await api.post<{ deviceId: string; secret: string }>('/api/v1/devices', { id: `rb-${i}`, tags: { pool: 'rb' } });
      agents.push(await startFakeAgent(t.mqttUrl, created.body));
      expect((await api.put(`/api/v1/devices/rb-${i}/models/detector`, { version: '2.1.0' })).status).toBe(200);
    }
    await eventually(() => (agents.every((a) => a.active.get('detector') === '2.1.0') ? true : undefined), 10_000, 'devices on 2.1.0');
  }, 120_000);
  afterAll(async () => {
    for (const a of agents) await a.close();
    await t.close();
  });

  it('keeps retrying the revert and finishes the abort only once every device is reverted', async () => {
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.2.0',
      target: { tags: { pool: 'rb' } },
      waves: [{ percent: 100, bakeSeconds: 3600 }],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    await eventually(async () => ((await detail(id)).counts.committed === DEVICES ? true : undefined), 20_000, 'all committed');
    expect(agents.every((a) => a.active.get('detector') === '2.2.0')).toBe(true);

    // The broker refuses the first revert publishes (a restart, a network blip).
    const reverts = new Set(agents.map((a) => topics.desired(a.id, 'detector')));
    faults.failNext(FAILED_ATTEMPTS, (m) => reverts.has(m.topic));
    expect((await api.post(`/api/v1/rollouts/${id}/abort`)).status).toBe(200);

    const retrying = await eventually(async () => (await events(id)).find((e) => e.type === 'rollback-retrying'), 20_000, 'a rollback-retrying event');
    expect(retrying.data).toMatchObject({ failed: DEVICES, reverted: 0 });
    expect(retrying.message).toMatch(/simulated broker outage/);
    // While reverting fails, the rollout is neither finished nor giving up on the devices.
    const during = await detail(id);
    expect(during.state).toBe('rolling-back');
    expect(during.finishedAt).toBeNull();
    expect(during.counts.skipped ?? 0).toBe(0);

    const done = await eventually(
      async () => {
        const d = await detail(id);
        return d.state === 'rolling-back' ? undefined : d;
      },
      20_000,
      'the abort to finish',
    );
    expect(faults.failed).toBe(FAILED_ATTEMPTS);
    expect(done.state).toBe('rolled-back');
    expect(done.counts).toEqual({ 'rolled-back': DEVICES });
    expect((await members(id)).map((m) => m.reason)).toEqual(Array(DEVICES).fill('reverted to 2.1.0'));
    await eventually(() => (agents.every((a) => a.active.get('detector') === '2.1.0') ? true : undefined), 10_000, 'devices back on 2.1.0');
    const log = await events(id);
    const finished = log.findIndex((e) => e.type === 'rollback-finished');
    expect(finished).toBeGreaterThan(log.findIndex((e) => e.type === 'rollback-retrying'));
    expect(log[finished]!.data).toMatchObject({ rolledBack: DEVICES, state: 'rolled-back' });
  });
});
