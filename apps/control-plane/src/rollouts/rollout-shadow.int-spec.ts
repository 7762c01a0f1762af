import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, latencyBucketIndex, type DesiredModel } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { RolloutDeviceRow, RolloutEventRow } from './rollout.repository.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { type FakeAgent, startFakeAgent } from './testing/fake-agent.js';
import { seedModel } from './testing/rollout-fixtures.js';

const DEVICES = 4;

function buckets(ms: number, n: number): number[] {
  const b = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  b[latencyBucketIndex(ms)] = n;
  return b;
}

/**
 * Shadow waves end to end in the control plane: the wave's devices are told `action: shadow` with
 * the directive (never install), count as done once staged, their shadow telemetry is ingested,
 * and the shadow gates decide whether any device is told to install.
 */
describe.each(databaseBackends())('shadow rollout on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  const agents: FakeAgent[] = [];

  const detail = async (id: string): Promise<RolloutDetail> => (await api.get<RolloutDetail>(`/api/v1/rollouts/${id}`)).body;
  const members = async (id: string, wave: number): Promise<RolloutDeviceRow[]> =>
    (await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${id}/devices?limit=1000&wave=${wave}`)).body.items;
  const events = async (id: string): Promise<RolloutEventRow[]> =>
    (await api.get<{ items: RolloutEventRow[] }>(`/api/v1/rollouts/${id}/events?limit=1000`)).body.items;
  const told = (a: FakeAgent, version: string): DesiredModel[] => a.received.filter((d) => d.version === version);

  /** One interval of the active version's telemetry with the shadow of `candidate` beside it. */
  /** Where each device's last interval ended: the next one starts there (the ingest refuses overlapping intervals). */
  const lastEnd = new Map<string, Date>();
  const publishShadow = async (a: FakeAgent, rolloutId: string, candidate: string, agreed: number, compared: number): Promise<void> => {
    const end = new Date();
    const start = lastEnd.get(a.id) ?? new Date(end.getTime() - 60_000);
    lastEnd.set(a.id, end);
    await a.publishTelemetry({
      model: 'classifier',
      version: '1.0.0',
      intervalStart: start.toISOString(),
      intervalEnd: end.toISOString(),
      count: compared,
      errors: 0,
      latencyBuckets: buckets(10, compared),
      latencySumMs: 10 * compared,
      predictions: { cat: compared },
      shadow: {
        version: candidate,
        rolloutId,
        mirrored: compared,
        dropped: 0,
        count: compared,
        errors: 0,
        latencyBuckets: buckets(12, compared),
        latencySumMs: 12 * compared,
        predictions: { cat: agreed, dog: compared - agreed },
        compared,
        agreed,
      },
    });
  };

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    await seedModel(
      t,
      api,
      'classifier',
      ['1.0.0', '2.0.0', '2.1.0'].map((version) => ({ version })),
    );
    for (let i = 1; i <= DEVICES; i++) {
      const created = await api.post<{ deviceId: string; secret: string }>('/api/v1/devices', { id: `shadow-${i}`, tags: { fleet: 'shadow' } });
      agents.push(await startFakeAgent(t.mqttUrl, created.body));
    }
    // The fleet runs 1.0.0: the version every shadow below is compared with.
    const base = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'classifier',
      version: '1.0.0',
      target: { tags: { fleet: 'shadow' } },
      waves: [{ percent: 100 }],
    });
    await eventually(async () => ((await detail(base.body.id)).state === 'completed' ? true : undefined), 20_000, 'baseline rollout');
  }, 180_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await t.close();
  });

  it('stops a rollout whose shadow agreement misses its minimum before any device installs the candidate', async () => {
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'classifier',
      version: '2.0.0',
      target: { tags: { fleet: 'shadow' } },
      waves: [
        {
          action: 'shadow',
          percent: 50,
          shadow: { samplePercent: 50, durationSeconds: 600 },
          gates: [{ metric: 'shadow_agreement', min: 0.9 }],
          minSamples: 200,
          windowSeconds: 300,
          onGateFailure: 'pause',
        },
        { percent: 100 },
      ],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const shadowIds = new Set((await members(id, 0)).map((m) => m.deviceId));
    expect(shadowIds.size).toBe(2);
    const shadowAgents = agents.filter((a) => shadowIds.has(a.id));
    // The wave's devices are told to shadow, with the directive, and count as done once staged.
    await eventually(async () => ((await members(id, 0)).every((m) => m.state === 'downloaded') ? true : undefined), 20_000, 'shadow wave staged');
    for (const a of shadowAgents) {
      expect(told(a, '2.0.0')).toEqual([expect.objectContaining({ action: 'shadow', shadow: { samplePercent: 50, durationSeconds: 600 }, rolloutId: id })]);
    }
    // 70 % agreement, known exactly: 2 devices x 150 compared inferences.
    for (const a of shadowAgents) await publishShadow(a, id, '2.0.0', 105, 150);
    const paused = await eventually(
      async () => {
        const d = await detail(id);
        return d.state === 'paused' ? d : undefined;
      },
      30_000,
      'rollout paused by its shadow gate',
    );
    expect(paused.currentWave).toBe(0);
    const gates = paused.waves[0]!.gates as { results: { metric: string; passed: boolean | null; value: number | null; samples: number }[] };
    expect(gates.results).toEqual([expect.objectContaining({ metric: 'shadow_agreement', passed: false, samples: 300 })]);
    expect(gates.results[0]!.value).toBeCloseTo(0.7, 10);
    expect((await events(id)).some((e) => e.type === 'paused' || /shadow agreement 0.7000 < 0.9000/.test(e.message))).toBe(true);
    // Not one device was told to install the candidate, and every device still runs 1.0.0.
    for (const a of agents) expect(told(a, '2.0.0').every((d) => d.action === 'shadow')).toBe(true);
    expect(agents.every((a) => a.active.get('classifier') === '1.0.0')).toBe(true);
    expect((await members(id, 1)).every((m) => m.state === 'pending')).toBe(true);
    const stored: { n: string | number }[] = await t.app
      .get(DataSource)
      .query(`SELECT count(*) AS n FROM telemetry_shadow_samples WHERE rollout_id = $1`, [id]);
    expect(Number(stored[0]!.n)).toBe(2);
    expect((await api.post(`/api/v1/rollouts/${id}/cancel`)).status).toBeLessThan(300);
  });

  it('goes on to install waves when the shadow agrees, leaving out shadow claims of devices outside the wave', async () => {
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'classifier',
      version: '2.1.0',
      target: { tags: { fleet: 'shadow' } },
      waves: [
        {
          action: 'shadow',
          percent: 50,
          shadow: { samplePercent: 100, durationSeconds: 600, maxSamples: 1000 },
          gates: [
            { metric: 'shadow_agreement', min: 0.9 },
            { metric: 'shadow_latency_p95', maxRatio: 1.5 },
          ],
          minSamples: 200,
          windowSeconds: 300,
        },
        { percent: 100 },
      ],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const shadowIds = new Set((await members(id, 0)).map((m) => m.deviceId));
    await eventually(async () => ((await members(id, 0)).every((m) => m.state === 'downloaded') ? true : undefined), 20_000, 'shadow wave staged');
    const outsider = agents.find((a) => !shadowIds.has(a.id))!;
    // A device outside the shadow wave claiming a terrible shadow is not counted.
    await publishShadow(outsider, id, '2.1.0', 0, 150);
    for (const a of agents.filter((x) => shadowIds.has(x.id))) await publishShadow(a, id, '2.1.0', 145, 150);
    await eventually(async () => ((await detail(id)).state === 'completed' ? true : undefined), 30_000, 'rollout completed');
    const d = await detail(id);
    const gates = d.waves[0]!.gates as { results: { metric: string; passed: boolean | null; value: number | null }[] };
    expect(gates.results.map((g) => [g.metric, g.passed])).toEqual([
      ['shadow_agreement', true],
      ['shadow_latency_p95', true],
    ]);
    expect(gates.results[0]!.value).toBeCloseTo(290 / 300, 10);
    // The install wave's devices run the candidate; the shadow wave's devices keep it staged beside 1.0.0.
    for (const a of agents) expect(a.active.get('classifier')).toBe(shadowIds.has(a.id) ? '1.0.0' : '2.1.0');
  });
});
