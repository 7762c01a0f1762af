import { describe, expect, it } from '@jest/globals';
import { latencyBucketIndex } from '@fleetline/protocol';
import { DEFAULT_PSI_MAX, evaluateGates } from './health-gate.logic.js';
import { emptyAggregate, type TelemetryAggregate } from './telemetry-stats.js';

/** An aggregate of `count` inferences all at `latencyMs`, `errors` of them failed, with the given predictions. */
function agg(count: number, latencyMs: number, errors = 0, predictions: Record<string, number> = {}): TelemetryAggregate {
  const a = emptyAggregate();
  a.count = count;
  a.errors = errors;
  a.latencyBuckets[latencyBucketIndex(latencyMs)] = count;
  a.latencySumMs = count * latencyMs;
  a.predictions = predictions;
  a.samples = 1;
  return a;
}

describe('evaluateGates', () => {
  it('passes a latency ratio gate when the candidate is within the ratio of the baseline', () => {
    const [r] = evaluateGates({
      gates: [{ metric: 'latency_p95', maxRatio: 1.5 }],
      minSamples: 100,
      candidate: agg(500, 45),
      baseline: agg(5000, 45),
      psiReference: null,
    });
    expect(r!.passed).toBe(true);
    expect(r!.threshold).toBeCloseTo(r!.baseline! * 1.5);
    expect(r!.samples).toBe(500);
    expect(r!.baselineSamples).toBe(5000);
  });

  it('fails a latency ratio gate for a slow candidate', () => {
    const [r] = evaluateGates({
      gates: [{ metric: 'latency_p99', maxRatio: 1.2 }],
      minSamples: 100,
      candidate: agg(500, 400),
      baseline: agg(5000, 45),
      psiReference: null,
    });
    expect(r!.passed).toBe(false);
    expect(r!.value!).toBeGreaterThan(r!.threshold!);
    expect(r!.reason).toContain('latency_p99');
  });

  it('applies the stricter of an absolute max and a ratio', () => {
    const [r] = evaluateGates({
      gates: [{ metric: 'latency_p50', maxRatio: 10, max: 20 }],
      minSamples: 10,
      candidate: agg(100, 45),
      baseline: agg(100, 45),
      psiReference: null,
    });
    expect(r!.threshold).toBe(20);
    expect(r!.passed).toBe(false);
  });

  it('is undecided below minSamples on either side, with per-gate overrides', () => {
    const results = evaluateGates({
      gates: [
        { metric: 'latency_p95', maxRatio: 1.2 },
        { metric: 'error_rate', maxIncrease: 0.01, minSamples: 10 },
        { metric: 'latency_p50', maxRatio: 2 },
      ],
      minSamples: 1000,
      candidate: agg(50, 10),
      baseline: agg(5000, 10),
      psiReference: null,
    });
    expect(results[0]!.passed).toBeNull();
    expect(results[0]!.reason).toContain('50/1000');
    expect(results[1]!.passed).toBe(true);
    const [b] = evaluateGates({
      gates: [{ metric: 'latency_p95', maxRatio: 1.2 }],
      minSamples: 100,
      candidate: agg(500, 10),
      baseline: agg(20, 10),
      psiReference: null,
    });
    expect(b!.passed).toBeNull();
    expect(b!.reason).toContain('baseline');
  });

  it('compares error rate increase against the baseline, and an absolute max', () => {
    const [inc, abs] = evaluateGates({
      gates: [
        { metric: 'error_rate', maxIncrease: 0.005 },
        { metric: 'error_rate', max: 0.05 },
      ],
      minSamples: 100,
      candidate: agg(1000, 10, 30),
      baseline: agg(10000, 10, 100),
      psiReference: null,
    });
    expect(inc!.value).toBeCloseTo(0.03);
    expect(inc!.baseline).toBeCloseTo(0.01);
    expect(inc!.threshold).toBeCloseTo(0.015);
    expect(inc!.passed).toBe(false);
    expect(abs!.passed).toBe(true);
  });

  it('without a baseline version, relative bounds do not block and absolute ones still decide', () => {
    const [rel, abs] = evaluateGates({
      gates: [
        { metric: 'latency_p95', maxRatio: 1.2 },
        { metric: 'latency_p95', max: 10 },
      ],
      minSamples: 10,
      candidate: agg(100, 45),
      baseline: null,
      psiReference: null,
    });
    expect(rel!.passed).toBe(true);
    expect(rel!.reason).toContain('no baseline');
    expect(abs!.passed).toBe(false);
  });

  it('fails a gate that sets no bound', () => {
    const [r] = evaluateGates({ gates: [{ metric: 'latency_p95' }], minSamples: 1, candidate: agg(10, 5), baseline: agg(10, 5), psiReference: null });
    expect(r!.passed).toBe(false);
  });

  it('judges psi against the reference with the default bound, and waits without one', () => {
    const reference = { distribution: { cat: 500, dog: 500 }, source: 'baseline captured' };
    const [same] = evaluateGates({
      gates: [{ metric: 'psi' }],
      minSamples: 100,
      candidate: agg(1000, 5, 0, { cat: 510, dog: 490 }),
      baseline: null,
      psiReference: reference,
    });
    expect(same!.passed).toBe(true);
    expect(same!.threshold).toBe(DEFAULT_PSI_MAX);
    expect(same!.baselineSamples).toBe(1000);
    const [shifted] = evaluateGates({
      gates: [{ metric: 'psi', max: 0.2 }],
      minSamples: 100,
      candidate: agg(1000, 5, 0, { cat: 900, dog: 100 }),
      baseline: null,
      psiReference: reference,
    });
    expect(shifted!.passed).toBe(false);
    expect(shifted!.value!).toBeGreaterThan(0.2);
    const [none] = evaluateGates({ gates: [{ metric: 'psi' }], minSamples: 100, candidate: agg(1000, 5, 0, { cat: 1 }), baseline: null, psiReference: null });
    expect(none!.passed).toBeNull();
    const [few] = evaluateGates({
      gates: [{ metric: 'psi' }],
      minSamples: 100,
      candidate: agg(10, 5, 0, { cat: 10 }),
      baseline: null,
      psiReference: reference,
    });
    expect(few!.passed).toBeNull();
  });
});
