import { describe, it, expect } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, LATENCY_BUCKETS_MS, telemetryMessageSchema } from '@fleetline/protocol';
import { MAX_LABELS, TelemetryAggregator } from './aggregator.js';

describe('TelemetryAggregator', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');

  it('buckets latencies with the protocol bounds (bound inclusive, +Inf last)', () => {
    const a = new TelemetryAggregator(t0);
    for (const ms of [0, 1, 1.5, 10, 10.01, 10_000, 99_999]) a.record({ model: 'm', latencyMs: ms, ok: true }, '1.0.0');
    const [agg] = a.flush(t1);
    const b = agg!.latencyBuckets;
    expect(b).toHaveLength(LATENCY_BUCKET_COUNT);
    expect(b[0]).toBe(2); // 0 and 1 (<= 1)
    expect(b[1]).toBe(1); // 1.5
    expect(b[LATENCY_BUCKETS_MS.indexOf(10)]).toBe(1);
    expect(b[LATENCY_BUCKETS_MS.indexOf(15)]).toBe(1);
    expect(b[LATENCY_BUCKETS_MS.length - 1]).toBe(1); // 10000
    expect(b[LATENCY_BUCKETS_MS.length]).toBe(1); // +Inf
    expect(agg!.latencySumMs).toBeCloseTo(0 + 1 + 1.5 + 10 + 10.01 + 10_000 + 99_999, 3);
    expect(agg!.count).toBe(7);
  });

  it('keeps builds (variants) of one version apart and names them on the wire', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8');
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8');
    a.record({ model: 'm', latencyMs: 9, ok: true }, '1.0.0');
    const out = a.flush(t1, [{ model: 'm', version: '1.0.0', variant: 'cpu-fp32' }]);
    expect(out.map((x) => [x.variant, x.count])).toEqual([
      ['npu-int8', 2],
      [undefined, 1],
      ['cpu-fp32', 0],
    ]);
    for (const x of out) expect(telemetryMessageSchema.safeParse({ v: 1, seq: 1, ...x }).success).toBe(true);
  });

  it('keeps model versions apart and counts errors and predictions', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true, label: 'cat' }, '1.0.0');
    a.record({ model: 'm', latencyMs: 5, ok: true, label: 'cat' }, '1.0.0');
    a.record({ model: 'm', latencyMs: 5, ok: false, label: 'dog' }, '1.0.0');
    a.record({ model: 'm', latencyMs: 5, ok: true, score: 0.95 }, '1.1.0');
    a.record({ model: 'm', latencyMs: 5, ok: true, score: 0.05 }, '1.1.0');
    const out = a.flush(t1);
    expect(out).toHaveLength(2);
    expect(out.find((x) => x.version === '1.0.0')).toMatchObject({ count: 3, errors: 1, predictions: { cat: 2 } });
    expect(out.find((x) => x.version === '1.1.0')).toMatchObject({ count: 2, errors: 0, predictions: { 'score:9': 1, 'score:0': 1 } });
  });

  it('emits an empty aggregate for active versions without traffic and resets each interval', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0');
    expect(
      a
        .flush(t1, [
          { model: 'm', version: '1.0.0' },
          { model: 'n', version: '2.0.0' },
        ])
        .map((x) => [x.model, x.count]),
    ).toEqual([
      ['m', 1],
      ['n', 0],
    ]);
    const next = a.flush(new Date('2026-01-01T00:02:00Z'), [{ model: 'm', version: '1.0.0' }]);
    expect(next).toEqual([expect.objectContaining({ count: 0, intervalStart: t1.toISOString() })]);
  });

  it('folds labels beyond the cap into "other" and stays valid on the wire', () => {
    const a = new TelemetryAggregator(t0);
    for (let i = 0; i < MAX_LABELS + 50; i++) a.record({ model: 'm', latencyMs: 1, ok: true, label: `l${i}` }, '1.0.0');
    const [agg] = a.flush(t1);
    expect(Object.keys(agg!.predictions)).toHaveLength(MAX_LABELS + 1);
    expect(agg!.predictions.other).toBe(50);
    expect(telemetryMessageSchema.safeParse({ v: 1, seq: 0, ...agg, vitals: {}, dropped: 0 }).success).toBe(true);
  });
});
