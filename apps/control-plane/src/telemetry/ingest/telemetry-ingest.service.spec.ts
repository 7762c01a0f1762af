import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage, topics } from '@fleetline/protocol';
import type { AppConfig } from '../../infra/config/app-config.js';
import type { MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { TelemetryIngestMetrics } from './telemetry-ingest.metrics.js';
import type { BatchWriteResult, IngestSample, TelemetryIngestRepository } from './telemetry-ingest.repository.js';
import { storageProblem, TelemetryIngestService } from './telemetry-ingest.service.js';

// Each seq covers its own one-second interval (a device's intervals never overlap: telemetry-bounds.ts).
const base = Date.now() - 600_000;

function message(seq: number, extra: Partial<TelemetryMessage> = {}): TelemetryMessage {
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[3] = 10;
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: 'm',
    version: '1.0.0',
    intervalStart: new Date(base + seq * 1000).toISOString(),
    intervalEnd: new Date(base + seq * 1000 + 1000).toISOString(),
    count: 10,
    errors: 0,
    latencyBuckets,
    latencySumMs: 40,
    predictions: { a: 10 },
    vitals: {},
    dropped: 0,
    ...extra,
  };
}

/** A repository that refuses (SQLSTATE 22003) every batch containing a sample with seq 13, like PostgreSQL would for a bad row. */
class FakeRepository {
  readonly written: IngestSample[] = [];
  calls = 0;
  async rolloutTablesPresent(): Promise<boolean> {
    return false;
  }
  async writeBatch(samples: readonly IngestSample[]): Promise<BatchWriteResult> {
    this.calls++;
    if (samples.some((s) => s.message.seq === 13)) throw Object.assign(new Error('value out of range'), { driverError: { code: '22003' } });
    const known = samples.filter((s) => s.deviceId !== 'ghost');
    const fresh = known.filter((s) => !this.written.some((w) => w.deviceId === s.deviceId && w.message.seq === s.message.seq));
    this.written.push(...fresh);
    return {
      known: known.length,
      inserted: fresh.length,
      agentDropped: fresh.reduce((n, s) => n + s.message.dropped, 0),
      rejected: { seq: 0, overlap: 0 },
    };
  }
}

/** Waits for every answer of handle(); undefined means it was answered at once. */
const settled = (answers: (Promise<void> | undefined)[]) => Promise.all(answers.map((a) => a ?? Promise.resolve()));

function setup(maxQueue = 100) {
  const repository = new FakeRepository();
  const metrics = new TelemetryIngestMetrics();
  const gateway = { subscribe: async () => undefined } as unknown as MqttGateway;
  const service = new TelemetryIngestService(gateway, repository as unknown as TelemetryIngestRepository, metrics, { telemetryRetentionDays: 7 } as AppConfig, {
    maxBatch: 50,
    maxQueue,
    maxDelayMs: 10_000,
  });
  const send = (deviceId: string, payload: unknown) =>
    service.handle({ topic: topics.telemetry(deviceId), payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)) });
  return { repository, metrics, service, send };
}

describe('TelemetryIngestService', () => {
  it('counts every outcome: accepted, duplicate, malformed, unknown device, out of window, agent drops', async () => {
    const { metrics, service, send, repository } = setup();
    const pending = [
      send('d1', message(1, { dropped: 3 })),
      send('d1', message(1, { dropped: 3 })), // redelivery in the same batch
      send('d1', message(2)),
      send('ghost', message(1)),
    ];
    // Nothing to store: answered at once (acknowledged), no promise.
    expect(send('d1', '{"v":')).toBeUndefined();
    expect(send('d1', { ...message(3), latencyBuckets: [1] })).toBeUndefined();
    expect(
      send(
        'd1',
        message(4, {
          intervalEnd: new Date(Date.now() - 30 * 86_400_000).toISOString(),
          intervalStart: new Date(Date.now() - 30 * 86_400_000 - 1000).toISOString(),
        }),
      ),
    ).toBeUndefined();
    expect(service.handle({ topic: 'fleet/v1/devices/d1/reported', payload: Buffer.from(JSON.stringify(message(5))) })).toBeUndefined();
    await service.flush();
    await settled(pending);
    await settled([send('d1', message(2)), service.flush()]); // redelivery in a later batch
    expect(metrics.received).toBe(9);
    expect(metrics.accepted).toBe(2);
    expect(metrics.duplicate).toBe(2);
    expect(metrics.unknownDevice).toBe(1);
    expect(metrics.malformed).toBe(3);
    expect(metrics.outOfWindow).toBe(1);
    expect(metrics.agentDropped).toBe(3);
    expect(metrics.batches).toBe(2);
    expect(repository.written.map((s) => s.message.seq)).toEqual([1, 2]);
  });

  it('isolates a sample the database refuses and writes the rest of its batch', async () => {
    const { metrics, service, send, repository } = setup();
    const pending = Array.from({ length: 40 }, (_, seq) => send('d1', message(seq)));
    await service.flush();
    // The refused sample is acknowledged too: resending it could never succeed.
    await settled(pending);
    expect(metrics.accepted).toBe(39);
    expect(metrics.refused).toBe(1);
    expect(metrics.writeFailed).toBe(0);
    // Bisection: a handful of statements, not one per sample.
    expect(repository.calls).toBeLessThan(20);
  });

  it('makes senders wait when the queue is full instead of dropping', async () => {
    const { metrics, service, send } = setup(50);
    const pending = Array.from({ length: 60 }, (_, i) => send('d1', message(100 + i)));
    expect(metrics.waitedForRoom).toBe(10);
    await service.flush();
    await settled(pending);
    await service.flush();
    expect(metrics.accepted).toBe(60);
    expect(metrics.droppedOverload).toBe(0);
  });

  it('rejects the samples of a batch the database failed to write, so they are not acknowledged', async () => {
    const { metrics, service, send, repository } = setup();
    const writeBatch = repository.writeBatch.bind(repository);
    repository.writeBatch = async () => {
      throw Object.assign(new Error('connection terminated'), { code: 'ECONNRESET' });
    };
    const pending = [send('d1', message(1)), send('d1', message(2))].map((p) =>
      p!.then(
        () => 'stored',
        () => 'not stored',
      ),
    );
    await service.flush();
    expect(await Promise.all(pending)).toEqual(['not stored', 'not stored']);
    expect(metrics.writeFailed).toBe(2);
    repository.writeBatch = writeBatch;
    await settled([send('d1', message(1)), service.flush()]);
    expect(metrics.accepted).toBe(1);
  });

  it('refuses samples after shutdown began so they are not acknowledged', async () => {
    const { metrics, service, send } = setup();
    await service.onModuleDestroy();
    await expect(send('d1', message(1))).rejects.toThrow('shutting down');
    expect(metrics.droppedShutdown).toBe(1);
  });

  it('acknowledges, drops and counts samples beyond the bounds, and a second sample of one interval in a batch', async () => {
    const { metrics, service, send, repository } = setup();
    expect(send('d1', message(1, { count: 20_000 }))).toBeUndefined(); // 20,000 in one second
    expect(
      send('d1', message(2, { intervalStart: new Date(Date.now() + 3_600_000).toISOString(), intervalEnd: new Date(Date.now() + 3_601_000).toISOString() })),
    ).toBeUndefined();
    const pending = [send('d1', message(3)), send('d1', { ...message(4), intervalStart: message(3).intervalStart, intervalEnd: message(3).intervalEnd })];
    await service.flush();
    await settled(pending);
    expect(metrics.rejected).toEqual({ rate: 1, interval: 0, counter: 0, future: 1, seq: 0, overlap: 1 });
    expect(repository.written.map((s) => s.message.seq)).toEqual([3]);
    expect(metrics.snapshot()['rejected_overlap']).toBe(1);
  });

  it("writes a batch's samples of one stream whatever order they arrived in, and still refuses one over another's time", async () => {
    const { metrics, service, send, repository } = setup();
    // Late ones first (after a reconnect), then a fresh seq for seq 6's interval.
    const pending = [7, 5, 6, 4].map((seq) => send('d1', message(seq)));
    pending.push(send('d1', { ...message(9), intervalStart: message(6).intervalStart, intervalEnd: message(6).intervalEnd }));
    await service.flush();
    await settled(pending);
    expect(metrics.batches).toBe(1);
    expect(metrics.rejected).toEqual({ rate: 0, interval: 0, counter: 0, future: 0, seq: 0, overlap: 1 });
    expect(repository.written.map((s) => s.message.seq)).toEqual([7, 5, 6, 4]);
  });

  it('refuses samples the store cannot hold', () => {
    const t = (m: TelemetryMessage) => storageProblem(m, Date.parse(m.intervalStart), Date.parse(m.intervalEnd));
    expect(t(message(1))).toBeUndefined();
    expect(t(message(1, { intervalStart: '0000-01-01T00:00:00Z' }))).toContain('longer than a day');
    expect(t(message(1, { count: 2 ** 31 }))).toContain('counter');
    expect(t(message(1, { latencySumMs: 1e300 }))).toContain('latencySumMs');
    expect(t(message(1, { predictions: { 'a\u0000': 1 } }))).toContain('U+0000');
    expect(t(message(1, { intervalStart: new Date(base + 3000).toISOString() }))).toContain('before');
  });
});
