import { describe, it, expect } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, LATENCY_BUCKETS_MS, telemetryMessageSchema } from '@fleetline/protocol';
import { MAX_LABELS, TelemetryAggregator } from './aggregator.js';

describe('TelemetryAggregator', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');
  const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
  const iso = (seconds: number) => at(seconds).toISOString();

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
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8', at(1));
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8', at(2));
    a.record({ model: 'm', latencyMs: 9, ok: true }, '1.0.0', undefined, at(3));
    a.switchBuild('m', '1.0.0', 'cpu-fp32', at(4));
    const out = a.flush(t1, [{ model: 'm', version: '1.0.0', variant: 'cpu-fp32' }]);
    expect(out.map((x) => [x.variant, x.count])).toEqual([
      ['npu-int8', 2],
      [undefined, 1],
      ['cpu-fp32', 0],
    ]);
    for (const x of out) expect(telemetryMessageSchema.safeParse({ v: 1, seq: 1, ...x, vitals: {}, dropped: 0 }).success).toBe(true);
  });

  it('splits the interval where a build changes, so each aggregate covers only its build', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', undefined, at(5));
    a.record({ model: 'n', latencyMs: 5, ok: true }, '3.0.0', undefined, at(6));
    // Activated at 20 s: the old build's share ends there even though its last inference was at 5 s.
    a.switchBuild('m', '2.0.0', undefined, at(20));
    a.record({ model: 'm', latencyMs: 5, ok: true }, '2.0.0', undefined, at(30));
    // The same version again under another build (a reinstall that picked another build): its own segment.
    a.switchBuild('m', '2.0.0', 'npu-int8', at(40));
    const out = a.flush(t1, [
      { model: 'm', version: '2.0.0', variant: 'npu-int8' },
      { model: 'n', version: '3.0.0' },
    ]);
    // Segments that ended first, then the running ones: per model, in time order (the order the outbox numbers them in).
    expect(out.map((x) => [x.model, x.version, x.variant, x.intervalStart, x.intervalEnd, x.count])).toEqual([
      ['m', '1.0.0', undefined, t0.toISOString(), iso(20), 1],
      ['m', '2.0.0', undefined, iso(20), iso(40), 1],
      ['n', '3.0.0', undefined, t0.toISOString(), t1.toISOString(), 1],
      ['m', '2.0.0', 'npu-int8', iso(40), t1.toISOString(), 0],
    ]);
    // The next interval starts where this one ended, with the build running now.
    expect(a.flush(at(120), [{ model: 'm', version: '2.0.0', variant: 'npu-int8' }]).map((x) => [x.variant, x.intervalStart, x.intervalEnd])).toEqual([
      ['npu-int8', t1.toISOString(), iso(120)],
    ]);
  });

  it('splits at the first inference of another build when nobody announced the change', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'cpu-fp32', at(10));
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8', at(25));
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', 'npu-int8', at(26));
    const out = a.flush(t1);
    expect(out.map((x) => [x.variant, x.intervalStart, x.intervalEnd, x.count])).toEqual([
      ['cpu-fp32', t0.toISOString(), iso(25), 1],
      ['npu-int8', iso(25), t1.toISOString(), 2],
    ]);
  });

  it('ends a model that stopped running where it stopped, and starts it again where it is back', () => {
    const a = new TelemetryAggregator(t0);
    a.record({ model: 'm', latencyMs: 5, ok: true }, '1.0.0', undefined, at(5));
    a.switchBuild('m', undefined, undefined, at(15));
    expect(a.flush(at(30)).map((x) => [x.intervalStart, x.intervalEnd, x.count])).toEqual([[t0.toISOString(), iso(15), 1]]);
    // Nothing runs: nothing to report.
    expect(a.flush(at(60))).toEqual([]);
    a.switchBuild('m', '1.0.0', undefined, at(70));
    a.switchBuild('m', undefined, undefined, at(80));
    a.switchBuild('m', '1.0.0', undefined, at(100));
    expect(a.flush(at(120), [{ model: 'm', version: '1.0.0' }]).map((x) => [x.intervalStart, x.intervalEnd, x.count])).toEqual([
      [iso(70), iso(80), 0],
      [iso(100), iso(120), 0],
    ]);
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
