import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { DataSource } from 'typeorm';
import { LATENCY_BUCKET_COUNT, latencyBucketIndex, populationStabilityIndex, PROTOCOL_VERSION, type TelemetryMessage, topics } from '@fleetline/protocol';
import { MetricsService } from '../../metrics/metrics.service.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import { HealthGateService } from '../gates/health-gate.contract.js';
import { TelemetryIngestMetrics } from './telemetry-ingest.metrics.js';
import { TelemetryIngestService } from './telemetry-ingest.service.js';

/**
 * Security issue #11, telemetry: what one device can claim is bounded (rate, interval, counters,
 * clock, seq, replays), refused messages are acknowledged, dropped and counted, the baseline counts
 * only devices that run the baseline version, and one device cannot dominate a cohort's gate numbers.
 */

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

interface Device {
  id: string;
  client: MqttClient;
}

function sample(
  seq: number,
  version: string,
  opts: { count?: number; errors?: number; latencyMs?: number; end?: Date; seconds?: number; model?: string; label?: string } = {},
): TelemetryMessage {
  const count = opts.count ?? 100;
  const end = opts.end ?? new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000);
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[latencyBucketIndex(opts.latencyMs ?? 10)] = count;
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: opts.model ?? 'cap',
    version,
    intervalStart: new Date(end.getTime() - (opts.seconds ?? 60) * 1000).toISOString(),
    intervalEnd: end.toISOString(),
    count,
    errors: opts.errors ?? 0,
    latencyBuckets,
    latencySumMs: count * (opts.latencyMs ?? 10),
    predictions: { [opts.label ?? 'a']: count },
    vitals: {},
    dropped: 0,
  };
}

describe.each(databaseBackends())('telemetry bounds on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  let metrics: TelemetryIngestMetrics;
  let ingest: TelemetryIngestService;
  const devices: Device[] = [];

  async function device(id: string, activeVersions: Record<string, string> = {}): Promise<Device> {
    const created = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(created.status).toBe(201);
    for (const [model, version] of Object.entries(activeVersions)) {
      await db.query(`INSERT INTO device_models (device_id, model, active_version) VALUES ($1, $2, $3)`, [id, model, version]);
    }
    const client = await mqtt.connectAsync(t.mqttUrl, { clientId: id, username: id, password: created.body.secret, protocolVersion: 4, reconnectPeriod: 0 });
    const d = { id, client };
    devices.push(d);
    return d;
  }

  /** Resolves on PUBACK: the control plane acknowledged the message (stored, or refused and dropped). */
  async function send(d: Device, m: TelemetryMessage): Promise<void> {
    await d.client.publishAsync(topics.telemetry(d.id), JSON.stringify(m), { qos: 1 });
  }

  async function storedSeqs(deviceId: string): Promise<number[]> {
    const rows: { seq: string | number }[] = await db.query(`SELECT seq FROM telemetry_samples WHERE device_id = $1 ORDER BY seq`, [deviceId]);
    return rows.map((r) => Number(r.seq));
  }

  beforeAll(async () => {
    // Limits small enough to probe without huge payloads.
    t = await startTestApp(backend, { TELEMETRY_MAX_INFERENCES_PER_SECOND: '100', TELEMETRY_MAX_INTERVAL_SECONDS: '600', TELEMETRY_MAX_SEQ_GAP: '1000' });
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    metrics = t.app.get(TelemetryIngestMetrics);
    ingest = t.app.get(TelemetryIngestService);
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.client.endAsync()));
    await t.close();
  });

  it('refuses, acknowledges and counts messages whose claims exceed the bounds; the device goes on', async () => {
    const lim = (seq: number, version: string, o: Parameters<typeof sample>[2] = {}): TelemetryMessage => sample(seq, version, { ...o, model: 'lim' });
    const d = await device('tb-liar', { lim: '1.0.0' });
    const before = { ...metrics.rejected };
    // 100/s over 60 s allows 6,000.
    await send(d, lim(1, '1.0.0', { count: 6_001 }));
    // 2^31 - 1 inferences: the old limit was only the column type.
    await send(d, lim(2, '1.0.0', { count: 2_147_483_647 }));
    await send(d, lim(3, '1.0.0', { seconds: 601, count: 10 }));
    await send(d, { ...lim(4, '1.0.0'), errors: 101 });
    await send(d, lim(5, '1.0.0', { end: new Date(Date.now() + 3_600_000) }));
    // Every one was acknowledged (publishAsync resolved on PUBACK): the device's outbox is not blocked.
    await ingest.flush();
    expect(metrics.rejected.rate - before.rate).toBe(2);
    expect(metrics.rejected.interval - before.interval).toBe(1);
    expect(metrics.rejected.counter - before.counter).toBe(1);
    expect(metrics.rejected.future - before.future).toBe(1);
    expect(await storedSeqs('tb-liar')).toEqual([]);

    // A good message afterwards is stored.
    const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 150_000);
    await send(d, lim(10, '1.0.0', { end }));
    await eventually(async () => ((await storedSeqs('tb-liar')).length === 1 ? true : undefined), 10_000, 'good sample stored');

    // A seq far ahead of the last stored one, and the same interval again under a new seq (a replay counted twice).
    const next = new Date(end.getTime() + 60_000);
    await send(d, lim(10 + 1001, '1.0.0', { end: next }));
    await send(d, lim(11, '1.0.0', { end }));
    await ingest.flush();
    expect(metrics.rejected.seq - before.seq).toBe(1);
    expect(metrics.rejected.overlap - before.overlap).toBe(1);
    // A redelivery of the stored message is a duplicate, not a refusal; the next interval with the next seq is stored.
    const dup = metrics.duplicate;
    await send(d, lim(10, '1.0.0', { end }));
    await send(d, lim(12, '1.0.0', { end: next }));
    await eventually(async () => ((await storedSeqs('tb-liar')).length === 2 ? true : undefined), 10_000, 'next sample stored');
    expect(metrics.duplicate - dup).toBe(1);
    expect(await storedSeqs('tb-liar')).toEqual([10, 12]);

    const text = await t.app.get(MetricsService).registry.metrics();
    expect(text).toMatch(/fleetline_telemetry_rejected_total\{reason="rate"\} [1-9]/);
    expect(text).toMatch(/fleetline_telemetry_rejected_total\{reason="overlap"\} [1-9]/);
  });

  it('counts in the baseline only devices whose active version is the baseline, and caps one device weight in a cohort', async () => {
    const rolloutId = randomUUID();
    await db.query(
      `INSERT INTO rollouts (id, model, version, state, action, spec, baseline_version, start_at) VALUES ($1, 'cap', '2.0.0', 'paused', 'install', $2, '1.0.0', now())`,
      [rolloutId, JSON.stringify(ROLLOUT_SPEC)],
    );
    const canaries: Device[] = [];
    for (let i = 0; i < 20; i++) canaries.push(await device(`tb-can-${i}`, { cap: '2.0.0' }));
    await db.query(
      `INSERT INTO rollout_devices (rollout_id, device_id, model, ordinal, wave, state)
       SELECT $1, 'tb-can-' || i, 'cap', i, 0, 'committed' FROM generate_series(0, 19) AS i`,
      [rolloutId],
    );
    const base = await device('tb-base', { cap: '1.0.0' });
    // Outside the waves, telemetry labelled with the baseline version from a device that runs something else.
    const impostor = await device('tb-impostor', { cap: '2.0.0' });
    const unassigned = await device('tb-unassigned');

    const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000);
    await send(base, sample(1, '1.0.0', { count: 1000, latencyMs: 10, end }));
    await send(impostor, sample(1, '1.0.0', { count: 5000, latencyMs: 5000, errors: 5000, end }));
    await send(unassigned, sample(1, '1.0.0', { count: 5000, latencyMs: 5000, errors: 5000, end }));
    // Twenty canaries of 100 inferences, all fine, and one of them claiming 5,000 failed, slow ones in the next minute.
    for (const c of canaries) await send(c, sample(1, '2.0.0', { count: 100, latencyMs: 10, end }));
    await ingest.flush();
    const heavy = canaries[0]!;
    await send(heavy, sample(2, '2.0.0', { count: 5000, latencyMs: 5000, errors: 5000, label: 'b', end: new Date(end.getTime() + 60_000), seconds: 60 }));
    await ingest.flush();

    const cohorts: { device_id: string; cohort: string }[] = await db.query(
      `SELECT device_id, cohort FROM telemetry_samples WHERE device_id IN ('tb-base', 'tb-impostor', 'tb-unassigned') ORDER BY device_id`,
    );
    expect(cohorts.map((c) => [c.device_id, c.cohort])).toEqual([
      ['tb-base', 'fleet'],
      ['tb-impostor', 'fleet-inactive'],
      ['tb-unassigned', 'fleet-inactive'],
    ]);

    const results = await t.app.get(HealthGateService).evaluate({
      model: 'cap',
      candidateVersion: '2.0.0',
      baselineVersion: '1.0.0',
      rolloutId,
      waves: [0],
      minSamples: 100,
      windowSeconds: 3600,
      now: new Date(end.getTime() + 120_000),
      gates: [
        { metric: 'error_rate', maxIncrease: 0.5 },
        { metric: 'latency_p50', maxRatio: 2 },
        { metric: 'psi', max: 100 },
      ],
    });
    const errorRate = results.find((r) => r.metric === 'error_rate')!;
    // The baseline is tb-base alone: 1,000 inferences, no errors (the impostors' 10,000 failed ones are left out).
    expect(errorRate.baselineSamples).toBe(1000);
    expect(errorRate.baseline).toBe(0);
    // The median canary sample has 100 inferences (log2 bin [64, 128)): a sample weighs at most 10 x 128 = 1,280.
    expect(errorRate.samples).toBe(20 * 100 + 1280);
    expect(errorRate.value).toBeCloseTo(1280 / 3280);
    expect(errorRate.passed).toBe(true);
    // Without the cap the heavy device would be 5,000 of 7,000 inferences and the canary's median latency its 5 s.
    const p50 = results.find((r) => r.metric === 'latency_p50')!;
    expect(p50.value!).toBeLessThan(20);
    expect(p50.passed).toBe(true);

    // Predictions are weighted the same way: PSI against the baseline window ({a: 1000}) sees b as 1,280 of 3,280, not 5,000 of 7,000.
    const psi = results.find((r) => r.metric === 'psi')!;
    expect(psi.reason).toContain('baseline window');
    expect(psi.value!).toBeCloseTo(populationStabilityIndex({ a: 1000 }, { a: 2000, b: 1280 })!, 6);
    expect(psi.value!).toBeLessThan(populationStabilityIndex({ a: 1000 }, { a: 2000, b: 5000 })!);

    // The viewer API still shows what the devices claimed.
    const view = await api.get<{ totals: { inferences: number } }>(`/api/v1/telemetry/models/cap/versions/2.0.0`);
    expect(view.body.totals.inferences).toBe(20 * 100 + 5000);
  });
});
