import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { apiClient, type ApiClient, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { seedDevices, seedModel } from './testing/rollout-fixtures.js';

/**
 * ROLLOUT_MAX_IN_FLIGHT: a rollout whose spec sets no maxInFlight is still told to at most that
 * many devices between notice and outcome, so one wave of a whole fleet does not ask the replicas
 * to store every device's reports in the same seconds; a rollout's own maxInFlight wins.
 */
describe('default in-flight bound of rollouts (ROLLOUT_MAX_IN_FLIGHT)', () => {
  let t: TestApp;
  let api: ApiClient;
  const detail = async (id: string): Promise<RolloutDetail> => (await api.get<RolloutDetail>(`/api/v1/rollouts/${id}`)).body;

  beforeAll(async () => {
    t = await startTestApp('pglite', { ROLLOUT_MAX_IN_FLIGHT: '4', ROLLOUT_TICK_SECONDS: '0.2' });
    api = apiClient(t.baseUrl, t.adminKey);
    await seedModel(t, api, 'detector', [{ version: '2.1.0' }]);
  }, 120_000);
  afterAll(async () => {
    await t.close();
  });

  it("tells at most ROLLOUT_MAX_IN_FLIGHT devices of a rollout without maxInFlight, and a rollout's own maxInFlight overrides it", async () => {
    await seedDevices(t, 'bounded-', 10, { tags: { pool: 'bounded' } });
    const bounded = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'bounded' } },
      waves: [{ percent: 100 }],
    });
    expect(bounded.status).toBe(201);
    await eventually(async () => ((await detail(bounded.body.id)).counts.notified === 4 ? true : undefined), 10_000, '4 in flight');
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // five ticks later: still bounded (nobody answers)
    expect((await detail(bounded.body.id)).counts).toEqual({ notified: 4, pending: 6 });
    await api.post(`/api/v1/rollouts/${bounded.body.id}/cancel`);

    await seedDevices(t, 'own-', 10, { tags: { pool: 'own' } });
    const own = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'own' } },
      waves: [{ percent: 100 }],
      maxInFlight: 7,
    });
    await eventually(async () => ((await detail(own.body.id)).counts.notified === 7 ? true : undefined), 10_000, '7 in flight');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await detail(own.body.id)).counts).toEqual({ notified: 7, pending: 3 });
  });
});
