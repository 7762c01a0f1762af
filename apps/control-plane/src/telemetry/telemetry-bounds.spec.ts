import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage } from '@fleetline/protocol';
import { boundsProblem, countBin, DEFAULT_TELEMETRY_LIMITS, sampleWeight, sequenceProblem, weightCap } from './telemetry-bounds.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');

function message(count: number, errors = 0): TelemetryMessage {
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[3] = count;
  return {
    v: PROTOCOL_VERSION,
    seq: 1,
    model: 'm',
    version: '1.0.0',
    intervalStart: new Date(NOW - 60_000).toISOString(),
    intervalEnd: new Date(NOW).toISOString(),
    count,
    errors,
    latencyBuckets,
    latencySumMs: count,
    predictions: {},
    vitals: {},
    dropped: 0,
  };
}

describe('boundsProblem', () => {
  const limits = { ...DEFAULT_TELEMETRY_LIMITS, maxInferencesPerSecond: 10 };
  it('allows up to the rate times the interval, and refuses more', () => {
    expect(boundsProblem(message(600), NOW - 60_000, NOW, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(601), NOW - 60_000, NOW, NOW, limits)?.reason).toBe('rate');
    expect(boundsProblem(message(2_147_483_647), NOW - 60_000, NOW, NOW, DEFAULT_TELEMETRY_LIMITS)?.reason).toBe('rate');
    // A zero-length interval can claim nothing.
    expect(boundsProblem(message(1), NOW, NOW, NOW, limits)?.reason).toBe('rate');
    expect(boundsProblem(message(0), NOW, NOW, NOW, limits)).toBeUndefined();
  });
  it('refuses intervals longer than the maximum', () => {
    expect(boundsProblem(message(0), NOW - 3_600_000, NOW, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(0), NOW - 3_600_001, NOW, NOW, limits)?.reason).toBe('interval');
  });
  it('refuses more errors or latency observations than inferences', () => {
    expect(boundsProblem(message(10, 11), NOW - 60_000, NOW, NOW, limits)?.reason).toBe('counter');
    const m = message(10);
    m.latencyBuckets[0] = 1;
    expect(boundsProblem(m, NOW - 60_000, NOW, NOW, limits)?.reason).toBe('counter');
  });
  it('allows the clock skew into the future, not more', () => {
    expect(boundsProblem(message(0), NOW, NOW + 300_000, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(0), NOW, NOW + 300_001, NOW, limits)?.reason).toBe('future');
  });
});

describe('sequenceProblem', () => {
  const last = { seq: 10, intervalEnd: 1000 };
  it('passes a first sample, a redelivery and the next interval', () => {
    expect(sequenceProblem({ seq: 5, intervalStart: 0, intervalEnd: 1 }, undefined, 100)).toBeUndefined();
    expect(sequenceProblem({ seq: 10, intervalStart: 0, intervalEnd: 1000 }, last, 100)).toBeUndefined();
    expect(sequenceProblem({ seq: 11, intervalStart: 1000, intervalEnd: 2000 }, last, 100)).toBeUndefined();
    // A restarted agent (data dir wiped) starts its seq again: fine while the intervals move on.
    expect(sequenceProblem({ seq: 0, intervalStart: 1000, intervalEnd: 2000 }, last, 100)).toBeUndefined();
  });
  it('refuses a seq far ahead and a replayed interval under a new seq', () => {
    expect(sequenceProblem({ seq: 111, intervalStart: 1000, intervalEnd: 2000 }, last, 100)).toBe('seq');
    expect(sequenceProblem({ seq: 110, intervalStart: 1000, intervalEnd: 2000 }, last, 100)).toBeUndefined();
    expect(sequenceProblem({ seq: 11, intervalStart: 0, intervalEnd: 1000 }, last, 100)).toBe('overlap');
    expect(sequenceProblem({ seq: 11, intervalStart: 999, intervalEnd: 2000 }, last, 100)).toBe('overlap');
  });
});

describe('device weight cap', () => {
  it('bins counts by powers of two', () => {
    expect([0, 1, 2, 3, 4, 100, 128, 2 ** 31 - 1].map(countBin)).toEqual([0, 0, 1, 1, 2, 6, 7, 30]);
  });
  it('caps at factor x the upper bound of the median bin, whatever one device claims', () => {
    const hist = new Array<number>(32).fill(0);
    expect(weightCap(hist, 10)).toBeNull();
    hist[countBin(100)] = 20;
    hist[countBin(2_000_000_000)] = 1;
    expect(weightCap(hist, 10)).toBe(1280);
    expect(sampleWeight(100, 1280)).toBe(1);
    expect(sampleWeight(5000, 1280) * 5000).toBeCloseTo(1280);
    expect(sampleWeight(5000, null)).toBe(1);
  });
});
