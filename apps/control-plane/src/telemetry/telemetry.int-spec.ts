import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { DataSource } from 'typeorm';
import { LATENCY_BUCKET_COUNT, latencyBucketIndex, PROTOCOL_VERSION, type TelemetryMessage, topics } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { HealthGateService } from './gates/health-gate.contract.js';
import { rolloutCohort } from './gates/telemetry-cohort.js';
import { TelemetryIngestMetrics } from './ingest/telemetry-ingest.metrics.js';
import { TelemetryIngestService } from './ingest/telemetry-ingest.service.js';
import { TelemetryMaintenanceService } from './maintenance/telemetry-maintenance.service.js';
import type { VersionTelemetry } from './telemetry-query.service.js';

interface Device {
  id: string;
  client: MqttClient;
  seq: number;
}

/** A stored rollout definition (rollouts.spec) the rollout engine can read while the rollout sits paused. */
const ROLLOUT_SPEC = {
  target: {},
  waves: [{ percent: 100, bakeSeconds: 0, successPercent: 100, manualApproval: true, gates: [], minSamples: 0, windowSeconds: 600 }],
  onFailure: 'pause',
  onGateFailure: 'pause',
  maintenanceWindows: [],
  timeoutSeconds: 3600,
  retries: { max: 0, backoffSeconds: 60 },
  dynamic: false,
  coverAll: true,
};

function buckets(count: number, latencyMs: number): number[] {
  const b = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  b[latencyBucketIndex(latencyMs)] = count;
  return b;
}

function telemetry(
  seq: number,
  model: string,
  version: string,
  count: number,
  latencyMs: number,
  errors: number,
  predictions: Record<string, number>,
  end: Date,
): TelemetryMessage {
  return {
    v: PROTOCOL_VERSION,
    seq,
    model,
    version,
    intervalStart: new Date(end.getTime() - 60_000).toISOString(),
    intervalEnd: end.toISOString(),
    count,
    errors,
    latencyBuckets: buckets(count, latencyMs),
    latencySumMs: count * latencyMs,
    predictions,
    vitals: { cpuPercent: 40, memoryRssBytes: 100_000_000, temperatureC: 50 },
    dropped: 1,
  };
}

async function publish(device: Device, payload: string | Buffer): Promise<void> {
  await device.client.publishAsync(topics.telemetry(device.id), payload, { qos: 1 });
}

describe.each(databaseBackends())('telemetry on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  let metrics: TelemetryIngestMetrics;
  const devices: Device[] = [];
  const rolloutId = randomUUID();
  // A fixed instant a little in the past, inside the current hour.
  const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000);

  async function device(id: string): Promise<Device> {
    const created = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(created.status).toBe(201);
    const client = await mqtt.connectAsync(t.mqttUrl, { clientId: id, username: id, password: created.body.secret, protocolVersion: 4, reconnectPeriod: 0 });
    const d = { id, client, seq: 0 };
    devices.push(d);
    return d;
  }

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    metrics = t.app.get(TelemetryIngestMetrics);
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.client.endAsync()));
    await t.close();
  });

  it('ingests telemetry from real devices into raw samples and rollups, labelled by rollout cohort', async () => {
    const [base1, base2, can1, can2] = [await device('tl-base-1'), await device('tl-base-2'), await device('tl-can-1'), await device('tl-can-2')];
    // What the devices run, as their update reports record it: the baseline counts only devices running the baseline version.
    await db.query(
      `INSERT INTO device_models (device_id, model, active_version) VALUES ('tl-base-1', 'det', '1.0.0'), ('tl-base-2', 'det', '1.0.0'), ('tl-can-1', 'det', '2.0.0'), ('tl-can-2', 'det', '2.0.0')`,
    );
    // Rollout membership as the rollouts feature stores it: both canaries in wave 0 (paused, so the rollout engine leaves it alone).
    await db.query(
      `INSERT INTO rollouts (id, model, version, state, action, spec, baseline_version, start_at) VALUES ($1, 'det', '2.0.0', 'paused', 'install', $2, '1.0.0', now())`,
      [rolloutId, JSON.stringify(ROLLOUT_SPEC)],
    );
    await db.query(
      `INSERT INTO rollout_devices (rollout_id, device_id, model, ordinal, wave, state) VALUES ($1, 'tl-can-1', 'det', 0, 0, 'committed'), ($1, 'tl-can-2', 'det', 1, 0, 'committed')`,
      [rolloutId],
    );
    const before = metrics.received;
    // Baseline: fast, balanced predictions, 1 % errors. Candidate: slow, shifted predictions.
    for (const d of [base1, base2]) await publish(d, JSON.stringify(telemetry(d.seq++, 'det', '1.0.0', 1000, 18, 10, { cat: 500, dog: 500 }, end)));
    for (const d of [can1, can2]) await publish(d, JSON.stringify(telemetry(d.seq++, 'det', '2.0.0', 600, 350, 6, { cat: 540, dog: 60 }, end)));
    // A redelivery of base1's message, two malformed payloads, and a sample from before the retention window.
    await publish(base1, JSON.stringify(telemetry(0, 'det', '1.0.0', 1000, 18, 10, { cat: 500, dog: 500 }, end)));
    await publish(base2, 'not json');
    await publish(base2, JSON.stringify({ ...telemetry(base2.seq++, 'det', '1.0.0', 1, 1, 0, {}, end), latencyBuckets: [1, 2, 3] }));
    await publish(can1, JSON.stringify(telemetry(can1.seq++, 'det', '2.0.0', 5, 5, 0, {}, new Date(Date.now() - 400 * 86_400_000))));
    await eventually(() => (metrics.received - before >= 8 ? true : undefined), 10_000, 'messages received');
    await t.app.get(TelemetryIngestService).flush();

    expect(metrics.accepted).toBe(4);
    expect(metrics.duplicate).toBe(1);
    expect(metrics.malformed).toBe(2);
    expect(metrics.outOfWindow).toBe(1);
    expect(metrics.agentDropped).toBe(4);
    expect(metrics.batches).toBeGreaterThanOrEqual(1);

    const samples: { cohort: string; n: string | number }[] = await db.query(
      `SELECT cohort, count(*) AS n FROM telemetry_samples GROUP BY cohort ORDER BY cohort`,
    );
    expect(samples.map((s) => [s.cohort, Number(s.n)])).toEqual([
      ['fleet', 2],
      [rolloutCohort(rolloutId, 0), 2],
    ]);
    const rollups: Record<string, unknown>[] = await db.query(
      `SELECT version, cohort, count, errors, devices, latency_buckets FROM telemetry_minute ORDER BY version`,
    );
    expect(rollups).toHaveLength(2);
    expect(Number(rollups[0]!['count'])).toBe(2000);
    expect(Number(rollups[0]!['devices'])).toBe(2);
    expect((rollups[0]!['latency_buckets'] as unknown[]).map(Number)[latencyBucketIndex(18)]).toBe(2000);
    expect(rollups[1]!['cohort']).toBe(rolloutCohort(rolloutId, 0));
  });

  it('counts samples from unknown devices and ignores them', async () => {
    const before = metrics.unknownDevice;
    // Resolves once committed: a sample of an unknown device is counted, not an error.
    await t.app
      .get(TelemetryIngestService)
      .handle({ topic: topics.telemetry('tl-ghost'), payload: Buffer.from(JSON.stringify(telemetry(0, 'det', '1.0.0', 5, 5, 0, {}, end))) });
    expect(metrics.unknownDevice).toBe(before + 1);
    const rows: { n: string | number }[] = await db.query(`SELECT count(*) AS n FROM telemetry_samples WHERE device_id = 'tl-ghost'`);
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('drops samples the schema accepts but the store cannot hold, before they reach a batch', async () => {
    const ingest = t.app.get(TelemetryIngestService);
    const before = { accepted: metrics.accepted, malformed: metrics.malformed, writeFailed: metrics.writeFailed };
    const good = telemetry(100, 'aux', '1.0.0', 10, 5, 0, { ok: 10 }, end);
    const year0 = { ...telemetry(101, 'aux', '1.0.0', 10, 5, 0, { ok: 10 }, end), intervalStart: '0000-01-01T00:00:00Z' };
    const nul = telemetry(102, 'aux', '1.0.0', 10, 5, 0, { 'a\u0000b': 10 }, end);
    const huge = { ...telemetry(103, 'aux', '1.0.0', 10, 5, 0, { ok: 10 }, end), latencySumMs: 1.7e308 };
    await Promise.all(
      [good, year0, nul, huge].map(
        (m) => ingest.handle({ topic: topics.telemetry('tl-base-1'), payload: Buffer.from(JSON.stringify(m)) }) ?? Promise.resolve(),
      ),
    );
    expect(metrics.accepted).toBe(before.accepted + 1);
    expect(metrics.malformed).toBe(before.malformed + 3);
    expect(metrics.writeFailed).toBe(before.writeFailed);
  });

  it('serves version, model, rollout and device views with percentiles from summed buckets', async () => {
    const v1 = await api.get<VersionTelemetry>('/api/v1/telemetry/models/det/versions/1.0.0');
    expect(v1.status).toBe(200);
    expect(v1.body.totals.inferences).toBe(2000);
    expect(v1.body.totals.errors).toBe(20);
    expect(v1.body.totals.errorRate).toBeCloseTo(0.01);
    // All latencies fell into the (15, 20] bucket.
    expect(v1.body.totals.latency.p95!).toBeGreaterThan(15);
    expect(v1.body.totals.latency.p95!).toBeLessThanOrEqual(20);
    expect(v1.body.totals.predictions).toEqual({ cat: 1000, dog: 1000 });
    expect(v1.body.totals.vitals.cpuPercent).toBeCloseTo(40);
    expect(v1.body.series).toHaveLength(1);
    expect(v1.body.series[0]!.start).toBe(new Date(Math.floor(end.getTime() / 60_000) * 60_000).toISOString());

    const v2 = await api.get<VersionTelemetry>(
      `/api/v1/telemetry/models/det/versions/2.0.0?cohort=${encodeURIComponent(rolloutCohort(rolloutId, 0))}&bucket=300`,
    );
    expect(v2.status).toBe(200);
    expect(v2.body.totals.inferences).toBe(1200);
    expect(v2.body.totals.latency.p95!).toBeGreaterThan(300);
    expect(v2.body.totals.latency.p95!).toBeLessThanOrEqual(400);

    const fleetOnly = await api.get<VersionTelemetry>('/api/v1/telemetry/models/det/versions/2.0.0?cohort=fleet');
    expect(fleetOnly.body.totals.inferences).toBe(0);

    const model = await api.get<{ versions: { version: string; stats: { inferences: number } }[] }>('/api/v1/telemetry/models/det');
    expect(model.status).toBe(200);
    expect(model.body.versions.map((v) => [v.version, v.stats.inferences])).toEqual([
      ['1.0.0', 2000],
      ['2.0.0', 1200],
    ]);

    const dev = await api.get<{ models: { model: string; version: string; totals: { inferences: number }; series: unknown[] }[] }>(
      '/api/v1/telemetry/devices/tl-can-1?model=det',
    );
    expect(dev.status).toBe(200);
    expect(dev.body.models).toHaveLength(1);
    expect(dev.body.models[0]!.totals.inferences).toBe(600);

    const bad = await api.get<{ code: string }>('/api/v1/telemetry/models/det/versions/1.0.0?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('telemetry-invalid-window');
    expect((await api.get('/api/v1/telemetry/models/det/versions/1.0.0?bucket=90')).status).toBe(400);
    expect((await api.get('/api/v1/telemetry/models/det/versions/1.0.0?bucket=60&from=2026-01-01T00:00:00Z&to=2026-01-30T00:00:00Z')).status).toBe(400);
    expect((await api.get(`/api/v1/telemetry/rollouts/${randomUUID()}`)).status).toBe(404);
    expect((await apiClient(t.baseUrl).get('/api/v1/telemetry/models/det')).status).toBe(401);
  });

  it('captures reference distributions and reports PSI per rollout cohort against the baseline reference', async () => {
    // The scheduled capture (every 30 s) may have run already on a slow machine: assert on the table.
    await t.app.get(TelemetryMaintenanceService).captureReferences({ minInferences: 1000, windowSeconds: 600, lookbackSeconds: 3600 });
    const refs: { version: string; distribution: Record<string, number>; source: string }[] = await db.query(
      `SELECT version, distribution, source FROM telemetry_reference WHERE model = 'det' ORDER BY version`,
    );
    expect(refs.map((r) => [r.version, r.source])).toEqual([
      ['1.0.0', 'captured'],
      ['2.0.0', 'captured'],
    ]);
    expect(Object.fromEntries(Object.entries(refs[0]!.distribution).map(([k, v]) => [k, Number(v)]))).toEqual({ cat: 1000, dog: 1000 });
    // A second run captures nothing new.
    expect(await t.app.get(TelemetryMaintenanceService).captureReferences({ minInferences: 1000, windowSeconds: 600, lookbackSeconds: 3600 })).toBe(0);

    const r = await api.get<{
      baselineVersion: string;
      baselineReference: string;
      cohorts: { cohort: string; role: string; version: string; psi: { vsBaselineReference: number; vsOwnReference: number } }[];
    }>(`/api/v1/telemetry/rollouts/${rolloutId}`);
    expect(r.status).toBe(200);
    expect(r.body.baselineVersion).toBe('1.0.0');
    expect(r.body.baselineReference).toBe('captured');
    const candidate = r.body.cohorts.find((c) => c.role === 'candidate')!;
    const baseline = r.body.cohorts.find((c) => c.role === 'baseline')!;
    expect(candidate.cohort).toBe(rolloutCohort(rolloutId, 0));
    expect(candidate.psi.vsBaselineReference).toBeGreaterThan(0.2);
    expect(candidate.psi.vsOwnReference).toBeCloseTo(0);
    expect(baseline.psi.vsBaselineReference).toBeCloseTo(0);

    // A distribution uploaded with the version (models feature) wins over the captured one.
    await db.query(`INSERT INTO models (name) VALUES ('det') ON CONFLICT DO NOTHING`);
    await db.query(
      `INSERT INTO model_versions (model, version, major, minor, patch, prerelease_sort, reference_distribution) VALUES ('det', '2.0.0', 2, 0, 0, '~', $1)`,
      [JSON.stringify({ cat: 50, dog: 50 })],
    );
    const v2 = await api.get<VersionTelemetry>('/api/v1/telemetry/models/det/versions/2.0.0');
    expect(v2.body.psi.reference).toBe('uploaded');
    expect(v2.body.psi.value!).toBeGreaterThan(0.2);
  });

  it('evaluates health gates: a slow, drifted candidate fails against its baseline; too few samples is undecided', async () => {
    const gates = t.app.get(HealthGateService);
    const input = {
      model: 'det',
      candidateVersion: '2.0.0',
      baselineVersion: '1.0.0',
      rolloutId,
      waves: [0],
      minSamples: 500,
      windowSeconds: 3600,
      now: new Date(),
    };
    const results = await gates.evaluate({
      ...input,
      gates: [
        { metric: 'latency_p95', maxRatio: 1.5 },
        { metric: 'error_rate', maxIncrease: 0.005 },
        { metric: 'psi', max: 0.2 },
        { metric: 'latency_p50', max: 1000 },
      ],
    });
    const byMetric = Object.fromEntries(results.map((r) => [`${r.metric}${r.threshold === 1000 ? '-abs' : ''}`, r]));
    expect(byMetric['latency_p95']!.passed).toBe(false);
    expect(byMetric['latency_p95']!.samples).toBe(1200);
    expect(byMetric['latency_p95']!.baselineSamples).toBe(2000);
    expect(byMetric['error_rate']!.passed).toBe(true);
    expect(byMetric['error_rate']!.value).toBeCloseTo(0.01);
    expect(byMetric['psi']!.passed).toBe(false);
    expect(byMetric['psi']!.value!).toBeGreaterThan(0.2);
    expect(byMetric['psi']!.reason).toContain('baseline');
    expect(byMetric['latency_p50-abs']!.passed).toBe(true);

    // The same cohorts pass once the bounds allow what they show.
    const lenient = await gates.evaluate({
      ...input,
      gates: [
        { metric: 'latency_p95', maxRatio: 50 },
        { metric: 'error_rate', max: 0.02 },
        { metric: 'psi', max: 5 },
      ],
    });
    expect(lenient.map((r) => r.passed)).toEqual([true, true, true]);

    const waiting = await gates.evaluate({
      ...input,
      minSamples: 5000,
      gates: [
        { metric: 'latency_p95', maxRatio: 1.5 },
        { metric: 'psi', max: 0.2 },
      ],
    });
    expect(waiting.map((r) => r.passed)).toEqual([null, null]);
    // Waves outside the rollout's labelled cohorts have no samples yet.
    const otherWave = await gates.evaluate({ ...input, waves: [1], gates: [{ metric: 'latency_p95', maxRatio: 1.5 }] });
    expect(otherWave[0]!.passed).toBeNull();
    expect(otherWave[0]!.samples).toBe(0);
  });

  it('keeps partitions ahead and drops expired ones', async () => {
    const maintenance = t.app.get(TelemetryMaintenanceService);
    await db.query(
      `CREATE TABLE telemetry_samples_p20000101 PARTITION OF telemetry_samples FOR VALUES FROM ('2000-01-01T00:00:00Z') TO ('2000-01-02T00:00:00Z')`,
    );
    const { dropped } = await maintenance.maintainPartitions();
    expect(dropped).toEqual(['telemetry_samples_p20000101']);
    const rows: { relname: string }[] = await db.query(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry_samples' ORDER BY 1`,
    );
    const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    expect(rows.map((r) => r.relname)).toContain(`telemetry_samples_p${today}`);
    expect(rows.map((r) => r.relname)).not.toContain('telemetry_samples_p20000101');
    expect(rows.length).toBeGreaterThanOrEqual(3);
  });
});
