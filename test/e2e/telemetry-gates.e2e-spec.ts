import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import { type DeviceCredentials, LATENCY_BUCKET_COUNT, topics } from '@fleetline/protocol';
import { FleetApi, sleep, waitFor } from '../support/agent-fleet.js';
import { type ControlPlaneProcess, removeDir, type ScratchDatabase, scratchDatabase, startControlPlane } from '../support/control-plane.process.js';
import { listDevices, metricValue, modelOf, scrapeMetrics, seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { createRollout, type GateResultView, rolloutEvents, type RolloutView, waitForState } from '../support/sim-rollouts.js';

const PER_GROUP = 10;
/** Simulated inferences per second per device: enough samples for the gates within seconds. */
const RATE = 10;

interface TelemetryStatsView {
  inferences: number;
  samples: number;
  latency: { p95: number | null };
}

interface RolloutTelemetryView {
  cohorts: { cohort: string; role: string; wave: number | null; version: string; stats: TelemetryStatsView; psi: { vsBaselineReference: number | null } }[];
}

interface DeviceTelemetryView {
  models: { model: string; version: string; totals: TelemetryStatsView }[];
}

/** Label counts of the simulator's baseline prediction distribution (behaviour.ts, shift 0). */
const BASELINE_REFERENCE = { cat: 4000, dog: 2500, bird: 1500, car: 1200, person: 800 };

const gatedWaves = (gates: Record<string, unknown>[], onGateFailure: 'pause' | 'rollback', minSamples: number): Record<string, unknown>[] => [
  { percent: 30, bakeSeconds: 1, successPercent: 100, gates, minSamples, windowSeconds: 60, onGateFailure },
  { percent: 100, bakeSeconds: 1, successPercent: 100 },
];

/**
 * Model-health gates (issue #5) and the telemetry pipeline end to end: simulated agents report
 * per-interval telemetry every second; a slower version and a drifting version are stopped by
 * their gates in the first wave, a healthy one completes. Then malformed and duplicate telemetry
 * from a real device connection, and telemetry buffered by agents while the control plane is down.
 */
describe('telemetry-gated rollouts with simulated agents', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess;
  let api: FleetApi;
  const groups = new Map<string, SimGroup>();
  const rollouts = new Map<string, string>();

  beforeAll(async () => {
    db = await scratchDatabase();
    cp = await startControlPlane(db ? { databaseUrl: db.url } : {});
    api = new FleetApi(cp.baseUrl, cp.adminKey);
    await seedSimulatedModel(api, 'slow-model', ['1.0.0', '2.0.0']);
    await seedSimulatedModel(api, 'drift-model', ['1.0.0', '2.0.0'], { '1.0.0': { referenceDistribution: BASELINE_REFERENCE } });
    await seedSimulatedModel(api, 'calm-model', ['1.0.0', '2.0.0']);
    const token = await api.createEnrollmentToken('telemetry', undefined, { deviceTagKeys: ['group'] });
    const behaviours: Record<string, string[]> = {
      slow: [`*:rate=${RATE}`, `2.0.0:latencyMs=250,rate=${RATE}`],
      drift: [`*:rate=${RATE}`, `2.0.0:shift=0.8,rate=${RATE}`],
      calm: [`*:rate=${RATE}`],
    };
    for (const [name, b] of Object.entries(behaviours)) {
      groups.set(
        name,
        SimGroup.start(cp.baseUrl, token, { idPrefix: name, devices: PER_GROUP, tags: { group: name }, behaviours: b, telemetryIntervalSeconds: 1 }),
      );
    }
    await Promise.all([...groups.values()].map((g) => g.waitOnline(api)));

    // Every group on 1.0.0 first: the baseline the canaries are judged against.
    const v1 = await Promise.all(
      ['slow', 'drift', 'calm'].map((name) =>
        createRollout(api, { model: `${name}-model`, version: '1.0.0', target: { tags: { group: name } }, waves: [{ percent: 100 }] }),
      ),
    );
    for (const r of v1) expect((await waitForState(api, r.id, ['completed', 'paused', 'rolled-back'], 60_000)).state).toBe('completed');

    const definitions: Record<string, Record<string, unknown>[]> = {
      slow: gatedWaves([{ metric: 'latency_p95', maxRatio: 1.2 }], 'rollback', 100),
      drift: gatedWaves([{ metric: 'psi', max: 0.2 }], 'pause', 200),
      calm: gatedWaves(
        [
          { metric: 'latency_p95', maxRatio: 1.5 },
          { metric: 'error_rate', maxIncrease: 0.05 },
          { metric: 'psi', max: 0.2 },
        ],
        'pause',
        300,
      ),
    };
    for (const [name, waves] of Object.entries(definitions)) {
      const r = await createRollout(api, { model: `${name}-model`, version: '2.0.0', target: { tags: { group: name } }, waves });
      expect(r.baselineVersion).toBe('1.0.0');
      rollouts.set(name, r.id);
    }
  }, 180_000);

  afterAll(async () => {
    await Promise.all([...groups.values()].map((g) => g.stop()));
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  }, 60_000);

  const gateResults = (r: RolloutView, wave = 0): GateResultView[] => r.waves[wave]?.gates?.results ?? [];

  it('stops a version that adds latency in its first wave and rolls it back', async () => {
    const id = rollouts.get('slow')!;
    const final = await waitForState(api, id, ['rolled-back', 'completed', 'paused'], 90_000);
    expect(final.state).toBe('rolled-back');
    expect(final.currentWave).toBe(0);
    expect(final.waves[1]?.startedAt).toBeNull();

    const events = await rolloutEvents(api, id);
    const decision = events.find((e) => e.type === 'aborted');
    expect(decision?.message).toMatch(/health gates failed in wave 1: latency_p95=/);
    expect(events.find((e) => e.type === 'rollback-finished')?.data).toMatchObject({ rolledBack: final.waves[0]?.size, state: 'rolled-back' });
    const [gate] = decision?.data['gates'] as GateResultView[];
    expect(gate).toMatchObject({ metric: 'latency_p95', passed: false, threshold: expect.any(Number) });
    expect(gate!.samples).toBeGreaterThanOrEqual(100);
    expect(gate!.baselineSamples).toBeGreaterThanOrEqual(100);
    expect(gate!.baseline).toBeGreaterThan(0);
    expect(gate!.value!).toBeGreaterThan(1.2 * gate!.baseline!);
    expect(gate!.threshold).toBeCloseTo(1.2 * gate!.baseline!, 6);

    // The wave-0 devices took 2.0.0 and go back to 1.0.0; nobody else was ever told.
    await waitFor(
      'every slow device on 1.0.0',
      async () => (await listDevices(api, { tag: 'group:slow' })).every((d) => modelOf(d, 'slow-model')?.activeVersion === '1.0.0'),
      60_000,
      500,
    );
    expect(final.counts['rolled-back']).toBe(final.waves[0]?.size);
  }, 120_000);

  it('fails the PSI gate of a version whose predictions drift (shift 0.8)', async () => {
    const id = rollouts.get('drift')!;
    const paused = await waitForState(api, id, ['paused', 'completed', 'aborted', 'rolled-back'], 90_000);
    expect(paused.state).toBe('paused');
    expect(paused.currentWave).toBe(0);
    const [psi] = gateResults(paused);
    expect(psi).toMatchObject({ metric: 'psi', passed: false, threshold: 0.2 });
    expect(psi!.value!).toBeGreaterThan(0.2);
    const events = await rolloutEvents(api, id);
    expect(events.find((e) => e.type === 'paused')?.message).toMatch(/health gates failed in wave 1: psi=/);

    // The telemetry API shows the drift of the canary cohort against the baseline reference.
    const telemetry = (await api.request<RolloutTelemetryView>('GET', `/api/v1/telemetry/rollouts/${id}`, undefined, 200)).body;
    const canary = telemetry.cohorts.find((c) => c.cohort === `rollout:${id}:w0` && c.version === '2.0.0');
    expect(canary?.role).toBe('candidate');
    expect(canary?.stats.inferences).toBeGreaterThanOrEqual(200);
    expect(canary?.psi.vsBaselineReference).toBeGreaterThan(0.2);
    const wave1 = telemetry.cohorts.find((c) => c.cohort === `rollout:${id}:w1` && c.version === '1.0.0');
    expect(wave1?.psi.vsBaselineReference).toBeLessThan(0.1);
  }, 120_000);

  it('lets a healthy version pass every gate and complete', async () => {
    const id = rollouts.get('calm')!;
    const done = await waitForState(api, id, ['completed', 'paused', 'aborted', 'rolled-back'], 90_000);
    expect(done.state).toBe('completed');
    const results = gateResults(done);
    expect(results.map((g) => [g.metric, g.passed])).toEqual([
      ['latency_p95', true],
      ['error_rate', true],
      ['psi', true],
    ]);
    for (const g of results) expect(g.samples).toBeGreaterThanOrEqual(300);
    expect(done.counts).toEqual({ committed: PER_GROUP });
    const summary = await api.fleetSummary();
    expect(summary.models.find((m) => m.model === 'calm-model')?.versions).toEqual([{ version: '2.0.0', devices: PER_GROUP }]);
  }, 120_000);

  it('counts and ignores malformed and duplicate telemetry from an authenticated device', async () => {
    const creds = (await api.request<DeviceCredentials>('POST', '/api/v1/devices', { id: 'probe-1', tags: { group: 'probe' } }, 201)).body;
    const client = await mqtt.connectAsync(creds.mqtt.url, { clientId: creds.deviceId, username: creds.deviceId, password: creds.secret, reconnectPeriod: 0 });
    try {
      const before = await scrapeMetrics(cp.baseUrl);
      const counter = (text: string, outcome: string): number => metricValue(text, 'fleetline_telemetry_samples_total', { outcome }) ?? 0;
      const buckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
      buckets[5] = 7;
      const now = Date.now();
      const sample = {
        v: 1,
        seq: 1,
        model: 'probe-model',
        version: '1.0.0',
        intervalStart: new Date(now - 10_000).toISOString(),
        intervalEnd: new Date(now - 5_000).toISOString(),
        count: 7,
        errors: 0,
        latencyBuckets: buckets,
        latencySumMs: 70,
        predictions: { cat: 7 },
      };
      const telemetryTopic = topics.telemetry(creds.deviceId);
      await client.publishAsync(telemetryTopic, JSON.stringify(sample), { qos: 1 });
      await waitFor(
        'the valid sample to be stored',
        async () => counter(await scrapeMetrics(cp.baseUrl), 'accepted') > counter(before, 'accepted') && (await deviceTotals('probe-1'))?.samples === 1,
        15_000,
        200,
      );
      // A redelivery (same seq and interval), bytes that are not JSON, and JSON that breaks the schema.
      await client.publishAsync(telemetryTopic, JSON.stringify(sample), { qos: 1 });
      await client.publishAsync(telemetryTopic, 'not json at all', { qos: 1 });
      await client.publishAsync(telemetryTopic, JSON.stringify({ ...sample, seq: 2, latencyBuckets: [1, 2, 3] }), { qos: 1 });
      await client.publishAsync(telemetryTopic, JSON.stringify({ ...sample, seq: 3, count: -5 }), { qos: 1 });
      const after = await waitFor(
        'duplicate and malformed counters',
        async () => {
          const text = await scrapeMetrics(cp.baseUrl);
          return counter(text, 'duplicate') - counter(before, 'duplicate') >= 1 && counter(text, 'malformed') - counter(before, 'malformed') >= 3
            ? text
            : undefined;
        },
        15_000,
        200,
      );
      expect(counter(after, 'duplicate') - counter(before, 'duplicate')).toBe(1);
      expect(counter(after, 'malformed') - counter(before, 'malformed')).toBe(3);
      // Nothing of them reached the samples or the rollups.
      await sleep(1500);
      expect(await deviceTotals('probe-1')).toMatchObject({ inferences: 7, samples: 1 });
      const rollup = (await api.request<{ totals: TelemetryStatsView }>('GET', '/api/v1/telemetry/models/probe-model/versions/1.0.0', undefined, 200)).body;
      expect(rollup.totals).toMatchObject({ inferences: 7, samples: 1 });
    } finally {
      await client.endAsync();
    }
  }, 60_000);

  async function deviceTotals(deviceId: string, from?: Date, to?: Date): Promise<TelemetryStatsView | undefined> {
    const query = new URLSearchParams({ bucket: '60', ...(from ? { from: from.toISOString() } : {}), ...(to ? { to: to.toISOString() } : {}) });
    const body = (await api.request<DeviceTelemetryView>('GET', `/api/v1/telemetry/devices/${deviceId}?${query.toString()}`, undefined, 200)).body;
    return body.models[0]?.totals;
  }

  it('receives the telemetry agents buffered while the control plane was down', async () => {
    const calm = groups.get('calm')!;
    const probe = calm.deviceIds[0]!;
    await cp.stop();
    const down = new Date();
    // Several telemetry intervals (1 s) with no broker to send to.
    await sleep(6_000);
    const up = new Date();
    cp = await startControlPlane({
      dataDir: cp.dataDir,
      httpPort: cp.httpPort,
      mqttPort: cp.mqttPort,
      adminKey: cp.adminKey,
      ...(db ? { databaseUrl: db.url } : {}),
    });
    api = new FleetApi(cp.baseUrl, cp.adminKey);
    const outage = await waitFor(
      'samples from the outage',
      async () => {
        const totals = await deviceTotals(probe, down, up);
        return totals && totals.samples >= 5 ? totals : undefined;
      },
      60_000,
      500,
    );
    // One sample per 1 s interval ending inside the outage, RATE inferences each on average.
    const seconds = (up.getTime() - down.getTime()) / 1000;
    expect(outage.samples).toBeGreaterThanOrEqual(Math.floor(seconds) - 1);
    expect(outage.samples).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(outage.inferences).toBeGreaterThan(outage.samples * RATE * 0.5);
  }, 90_000);
});
