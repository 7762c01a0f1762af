import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { DataSource } from 'typeorm';
import { LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage, topics } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import { TelemetryIngestMetrics } from './telemetry-ingest.metrics.js';
import { TelemetryIngestService } from './telemetry-ingest.service.js';

/**
 * The history checks place a sample between its stored neighbours, not after the newest one: a
 * sample that arrives late (lower seq, after a higher one was stored) is stored in the hole it
 * belongs to, a late redelivery is a duplicate, and a fresh seq for time already reported is still
 * refused, whichever side of the stored samples it lands on.
 */

/** Minute `m` of a window that ended half an hour ago: one sample per minute, seq and time in step. */
const BASE = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;

function sample(seq: number, minute: number, version = '1.0.0'): TelemetryMessage {
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[2] = 10;
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: 'late',
    version,
    intervalStart: new Date(BASE + minute * 60_000).toISOString(),
    intervalEnd: new Date(BASE + (minute + 1) * 60_000).toISOString(),
    count: 10,
    errors: 0,
    latencyBuckets,
    latencySumMs: 50,
    predictions: { cat: 10 },
    vitals: {},
    dropped: 0,
  };
}

describe.each(databaseBackends())('telemetry ingest history checks on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  let metrics: TelemetryIngestMetrics;
  let ingest: TelemetryIngestService;
  const clients: MqttClient[] = [];

  async function device(id: string): Promise<MqttClient> {
    const created = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(created.status).toBe(201);
    const client = await mqtt.connectAsync(t.mqttUrl, { clientId: id, username: id, password: created.body.secret, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  }

  /** Resolves on PUBACK: the sample's batch committed (or the sample was refused and dropped). */
  async function send(client: MqttClient, deviceId: string, m: TelemetryMessage): Promise<void> {
    await client.publishAsync(topics.telemetry(deviceId), JSON.stringify(m), { qos: 1 });
  }

  async function storedSeqs(deviceId: string): Promise<number[]> {
    const rows: { seq: string | number }[] = await db.query(`SELECT seq FROM telemetry_samples WHERE device_id = $1 ORDER BY interval_end, seq`, [deviceId]);
    return rows.map((r) => Number(r.seq));
  }

  const refusals = () => ({ seq: metrics.rejected.seq, overlap: metrics.rejected.overlap });

  beforeAll(async () => {
    t = await startTestApp(backend, { TELEMETRY_MAX_SEQ_GAP: '1000' });
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    metrics = t.app.get(TelemetryIngestMetrics);
    ingest = t.app.get(TelemetryIngestService);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()));
    await t.close();
  });

  it('stores a late sample that arrives after a later one, and counts its late redelivery as a duplicate', async () => {
    const c = await device('late-1');
    const before = refusals();
    await send(c, 'late-1', sample(10, 0));
    await send(c, 'late-1', sample(12, 2));
    // Seq 11 comes last (a redelivery after a reconnect, a queue drained out of order): it belongs between 10 and 12.
    await send(c, 'late-1', sample(11, 1));
    expect(await storedSeqs('late-1')).toEqual([10, 11, 12]);
    const duplicates = metrics.duplicate;
    await send(c, 'late-1', sample(11, 1));
    await send(c, 'late-1', sample(10, 0));
    expect(metrics.duplicate - duplicates).toBe(2);
    expect(refusals()).toEqual(before);
    expect(await storedSeqs('late-1')).toEqual([10, 11, 12]);
  });

  it('stores late samples that arrive out of order within one batch', async () => {
    await device('late-2');
    const before = refusals();
    const batches = metrics.batches;
    const submit = (m: TelemetryMessage) => ingest.handle({ topic: topics.telemetry('late-2'), payload: Buffer.from(JSON.stringify(m)) });
    // Submitted in one turn: one batch, newest first.
    const answers = [submit(sample(23, 3)), submit(sample(21, 1)), submit(sample(22, 2)), submit(sample(20, 0))];
    // Each one queued (a promise), none answered at once as refused.
    await Promise.all(answers.map((a) => a ?? Promise.reject(new Error('not queued'))));
    expect(metrics.batches - batches).toBe(1);
    expect(refusals()).toEqual(before);
    expect(await storedSeqs('late-2')).toEqual([20, 21, 22, 23]);
  });

  it('stores an interval queued under a later seq where its time is, and an agent that starts its seqs again', async () => {
    const c = await device('late-3');
    const before = refusals();
    // A version switch queued one await at a time: the switch interval of 2.0.0 got seq 5, after seqs 2 to 4 of the next intervals.
    await send(c, 'late-3', sample(0, 0, '1.0.0'));
    for (const seq of [2, 3, 4]) await send(c, 'late-3', sample(seq, seq - 1, '2.0.0'));
    await send(c, 'late-3', sample(5, 0, '2.0.0'));
    expect(await storedSeqs('late-3')).toEqual([0, 5, 2, 3, 4]);
    // A wiped agent starts at seq 0 again; its intervals move on.
    await send(c, 'late-3', sample(0, 10, '2.0.0'));
    await send(c, 'late-3', sample(1, 11, '2.0.0'));
    expect(refusals()).toEqual(before);
    expect(await storedSeqs('late-3')).toEqual([0, 5, 2, 3, 4, 0, 1]);
  });

  it('still refuses a fresh seq for time already stored, before, between or after the stored samples, and a seq jump', async () => {
    const c = await device('late-4');
    for (const seq of [10, 11, 12]) await send(c, 'late-4', sample(seq, seq - 10));
    const before = refusals();
    // Lower than everything stored, for minute 1: a replay that checking against the newest sample alone would also refuse.
    await send(c, 'late-4', sample(5, 1));
    // In the hole between 10 and 12 by seq, but over the time of 11.
    await send(c, 'late-4', sample(13, 1));
    // After the newest, for its time.
    await send(c, 'late-4', sample(14, 2));
    // Fits the time after 12 but jumps too far past it.
    await send(c, 'late-4', sample(12 + 1001, 3));
    expect(refusals()).toEqual({ seq: before.seq + 1, overlap: before.overlap + 3 });
    expect(await storedSeqs('late-4')).toEqual([10, 11, 12]);
  });
});
