import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, latencyBucketIndex, populationStabilityIndex } from '@fleetline/protocol';
import { addBuckets, addDistributions, aggregateFromRow, emptyAggregate, mergeAll, psiAgainst, summarize } from './telemetry-stats.js';

describe('telemetry stats', () => {
  it('adds bucket arrays element-wise, zero-padding the shorter one', () => {
    expect(addBuckets([1, 2, 3], [10, 20])).toEqual([11, 22, 3]);
    expect(addBuckets([], [4])).toEqual([4]);
  });

  it('computes percentiles from merged buckets, not from averaged percentiles', () => {
    const fast = emptyAggregate();
    fast.count = 900;
    fast.latencyBuckets[latencyBucketIndex(5)] = 900;
    const slow = emptyAggregate();
    slow.count = 100;
    slow.latencyBuckets[latencyBucketIndex(400)] = 100;
    const stats = summarize(mergeAll([fast, slow]));
    expect(stats.inferences).toBe(1000);
    expect(stats.latency.p50!).toBeLessThanOrEqual(5);
    // 95th percentile lies among the slow tenth: inside the (300, 400] bucket.
    expect(stats.latency.p95!).toBeGreaterThan(300);
    expect(stats.latency.p95!).toBeLessThanOrEqual(400);
    expect(stats.latency.buckets).toHaveLength(LATENCY_BUCKET_COUNT);
  });

  it('reports null rates and vitals without data', () => {
    const s = summarize(emptyAggregate());
    expect(s.errorRate).toBeNull();
    expect(s.latency.p95).toBeNull();
    expect(s.vitals.cpuPercent).toBeNull();
  });

  it('normalises driver rows (strings from node-postgres, numbers from PGlite)', () => {
    const fromPg = aggregateFromRow({
      count: '10',
      errors: '1',
      latency_buckets: ['1', '9'],
      latency_sum_ms: '12.5',
      predictions: { a: '3' },
      samples: '2',
      cpu_percent_sum: '50',
      cpu_percent_n: '2',
    });
    const fromPglite = aggregateFromRow({
      count: 10,
      errors: 1,
      latency_buckets: [1, 9],
      latency_sum_ms: 12.5,
      predictions: { a: 3 },
      samples: 2,
      cpu_percent_sum: 50,
      cpu_percent_n: 2,
    });
    expect(fromPg).toEqual(fromPglite);
    expect(fromPg.latencyBuckets).toHaveLength(LATENCY_BUCKET_COUNT);
    expect(summarize(fromPg).vitals.cpuPercent).toBe(25);
    expect(aggregateFromRow({ latency_buckets: '{1,2}', predictions: '{"x":1}' }).latencyBuckets.slice(0, 2)).toEqual([1, 2]);
  });

  it('feeds PSI with summed label counts', () => {
    const merged = addDistributions({ cat: 10, dog: 5 }, { dog: 5, bird: 1 });
    expect(merged).toEqual({ cat: 10, dog: 10, bird: 1 });
    expect(psiAgainst({ cat: 1, dog: 1 }, { cat: 1, dog: 1 })).toBe(0);
    expect(psiAgainst(null, merged)).toBeNull();
    expect(psiAgainst({ cat: 50, dog: 50 }, { cat: 90, dog: 10 })).toBeCloseTo(populationStabilityIndex({ cat: 50, dog: 50 }, { cat: 90, dog: 10 })!);
  });
});
