import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, latencyBucketIndex, SHADOW_DIFF_BUCKET_COUNT, shadowDiffBucketIndex } from '@fleetline/protocol';
import { evaluateShadowGates, shadowAgreement, type ShadowTotals } from './shadow-gate.logic.js';

function buckets(ms: number, n: number): number[] {
  const b = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  b[latencyBucketIndex(ms)] = n;
  return b;
}

function totals(over: Partial<ShadowTotals> = {}): ShadowTotals {
  return {
    samples: 10,
    devices: 10,
    mirrored: 1000,
    dropped: 0,
    count: 1000,
    errors: 10,
    latencyBuckets: buckets(20, 1000),
    predictions: { cat: 600, dog: 400 },
    labelCompared: 1000,
    agreed: 900,
    diffBuckets: [],
    active: { count: 5000, errors: 25, latencyBuckets: buckets(10, 5000), predictions: { cat: 3000, dog: 2000 } },
    ...over,
  };
}

describe('evaluateShadowGates', () => {
  it('passes agreement at or above min and fails below it', () => {
    const [pass] = evaluateShadowGates({ gates: [{ metric: 'shadow_agreement', min: 0.9 }], minSamples: 100, totals: totals(), activeReference: null });
    expect(pass).toMatchObject({ passed: true, value: 0.9, threshold: 0.9, samples: 1000 });
    const [fail] = evaluateShadowGates({ gates: [{ metric: 'shadow_agreement', min: 0.95 }], minSamples: 100, totals: totals(), activeReference: null });
    expect(fail).toMatchObject({ passed: false, value: 0.9 });
    expect(fail!.reason).toBe('shadow agreement 0.9000 < 0.9500 over 1000 compared inferences');
  });

  it('waits until enough inferences were compared', () => {
    const [r] = evaluateShadowGates({ gates: [{ metric: 'shadow_agreement', min: 0.5 }], minSamples: 2000, totals: totals(), activeReference: null });
    expect(r).toMatchObject({ passed: null, samples: 1000 });
  });

  it('judges latency as a ratio to the active version on the same devices', () => {
    const gate = { metric: 'shadow_latency_p95' as const, maxRatio: 1.5 };
    const [slow] = evaluateShadowGates({ gates: [gate], minSamples: 100, totals: totals(), activeReference: null });
    expect(slow!.passed).toBe(false);
    expect(slow!.value!).toBeGreaterThan(slow!.baseline! * 1.5);
    const [ok] = evaluateShadowGates({ gates: [gate], minSamples: 100, totals: totals({ latencyBuckets: buckets(10, 1000) }), activeReference: null });
    expect(ok!.passed).toBe(true);
  });

  it('bounds the error rate absolutely or above the active version', () => {
    const [abs] = evaluateShadowGates({ gates: [{ metric: 'shadow_error_rate', max: 0.005 }], minSamples: 100, totals: totals(), activeReference: null });
    expect(abs).toMatchObject({ passed: false, value: 0.01 });
    const [rel] = evaluateShadowGates({
      gates: [{ metric: 'shadow_error_rate', maxIncrease: 0.01 }],
      minSamples: 100,
      totals: totals(),
      activeReference: null,
    });
    expect(rel).toMatchObject({ passed: true, value: 0.01, baseline: 0.005, threshold: 0.015 });
  });

  it('measures PSI of the candidate predictions against the active reference, else the active answers', () => {
    const gates = [{ metric: 'shadow_psi' as const, max: 0.1 }];
    const [same] = evaluateShadowGates({ gates, minSamples: 100, totals: totals(), activeReference: null });
    expect(same).toMatchObject({ passed: true });
    expect(same!.value!).toBeCloseTo(0, 6);
    const [shifted] = evaluateShadowGates({
      gates,
      minSamples: 100,
      totals: totals(),
      activeReference: { distribution: { cat: 100, dog: 900 }, source: 'uploaded reference' },
    });
    expect(shifted!.passed).toBe(false);
  });

  it('fails a gate that has no bound', () => {
    const r = evaluateShadowGates({
      gates: [{ metric: 'shadow_agreement' }, { metric: 'shadow_latency_p95' }],
      minSamples: 1,
      totals: totals(),
      activeReference: null,
    });
    expect(r.map((g) => g.passed)).toEqual([false, false]);
  });
});

describe('shadowAgreement', () => {
  it('counts regressor answers within the tolerance as agreeing', () => {
    const diffs = new Array<number>(SHADOW_DIFF_BUCKET_COUNT).fill(0);
    diffs[shadowDiffBucketIndex(0)] = 70;
    diffs[shadowDiffBucketIndex(0.005)] = 10;
    diffs[shadowDiffBucketIndex(1)] = 20;
    const t = totals({ labelCompared: 0, agreed: 0, diffBuckets: diffs });
    expect(shadowAgreement(t)).toEqual({ value: 0.8, compared: 100 });
    expect(shadowAgreement(t, 0.001)).toEqual({ value: 0.7, compared: 100 });
    expect(shadowAgreement(t, 1)).toEqual({ value: 1, compared: 100 });
  });
});
