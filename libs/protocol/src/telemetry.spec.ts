import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, LATENCY_BUCKETS_MS, latencyBucketIndex, percentileFromBuckets, populationStabilityIndex, scoreBucketKey } from './telemetry.js';

describe('latency histogram', () => {
  it('puts a sample in the first bucket whose bound is >= the value', () => {
    expect(latencyBucketIndex(0.5)).toBe(0);
    expect(latencyBucketIndex(1)).toBe(0);
    expect(latencyBucketIndex(1.01)).toBe(1);
    expect(latencyBucketIndex(100)).toBe(LATENCY_BUCKETS_MS.indexOf(100));
    expect(latencyBucketIndex(1e9)).toBe(LATENCY_BUCKET_COUNT - 1);
  });

  it('estimates percentiles from summed buckets', () => {
    const counts = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    // 100 samples at 10 ms, 100 samples at 100 ms
    counts[latencyBucketIndex(10)] = 100;
    counts[latencyBucketIndex(100)] = 100;
    const p50 = percentileFromBuckets(counts, 0.5)!;
    const p95 = percentileFromBuckets(counts, 0.95)!;
    expect(p50).toBeGreaterThan(7);
    expect(p50).toBeLessThanOrEqual(10);
    expect(p95).toBeGreaterThan(80);
    expect(p95).toBeLessThanOrEqual(100);
    expect(percentileFromBuckets(new Array<number>(LATENCY_BUCKET_COUNT).fill(0), 0.5)).toBeNull();
  });

  it('merges by addition: percentiles of the sum are not averages of percentiles', () => {
    const a = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    const b = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    a[latencyBucketIndex(5)] = 990;
    b[latencyBucketIndex(1000)] = 10;
    const merged = a.map((v, i) => v + b[i]!);
    expect(percentileFromBuckets(merged, 0.99)!).toBeLessThanOrEqual(5);
    expect(percentileFromBuckets(merged, 0.999)!).toBeGreaterThan(800);
  });
});

describe('prediction distribution', () => {
  it('buckets scores into ten keys, clamping out-of-range values', () => {
    expect(scoreBucketKey(0)).toBe('score:0');
    expect(scoreBucketKey(0.55)).toBe('score:5');
    expect(scoreBucketKey(1)).toBe('score:9');
    expect(scoreBucketKey(-3)).toBe('score:0');
  });

  it('computes PSI: zero for identical, large for a shifted distribution', () => {
    const base = { cat: 500, dog: 300, bird: 200 };
    expect(populationStabilityIndex(base, { cat: 50, dog: 30, bird: 20 })).toBeCloseTo(0, 10);
    expect(populationStabilityIndex(base, { cat: 200, dog: 300, bird: 500 })!).toBeGreaterThan(0.2);
    expect(populationStabilityIndex(base, { cat: 480, dog: 310, bird: 210 })!).toBeLessThan(0.01);
    expect(populationStabilityIndex({}, base)).toBeNull();
  });
});
