import { percentileFromBuckets, SHADOW_DIFF_BUCKETS } from '@fleetline/protocol';
import type { GateResult, GateSpec, ShadowGateMetric } from './health-gate.contract.js';
import { DEFAULT_PSI_MAX } from './health-gate.logic.js';
import { psiAgainst } from './telemetry-stats.js';

/** Default tolerance of shadow_agreement for regressors: answers this close count as the same. */
export const DEFAULT_SHADOW_TOLERANCE = 0.01;

/**
 * Sums of a shadow wave's shadow telemetry over a gate window: the candidate's numbers, and the
 * active version's numbers from the same telemetry messages (same devices, same intervals), which
 * are the baseline of the relative bounds.
 */
export interface ShadowTotals {
  /** Device-intervals that reported a shadow. */
  samples: number;
  devices: number;
  mirrored: number;
  dropped: number;
  count: number;
  errors: number;
  latencyBuckets: number[];
  predictions: Record<string, number>;
  /** Classifier comparisons and how many of them agreed. */
  labelCompared: number;
  agreed: number;
  /** Regressor comparisons, per SHADOW_DIFF_BUCKETS bucket (+Inf last); empty when none. */
  diffBuckets: number[];
  active: { count: number; errors: number; latencyBuckets: number[]; predictions: Record<string, number> };
}

export interface ShadowGateInputs {
  gates: readonly GateSpec[];
  minSamples: number;
  totals: ShadowTotals;
  /** What the active version is known to predict (its stored reference), for shadow_psi; else the active answers of the same inferences are used. */
  activeReference: { distribution: Record<string, number>; source: string } | null;
}

const fmt = (n: number | null): string => (n === null ? 'n/a' : Number.isInteger(n) ? String(n) : n.toFixed(4));

/** Share of comparisons that agree: same top-1 label, or a regressor difference within `tolerance`. */
export function shadowAgreement(t: ShadowTotals, tolerance = DEFAULT_SHADOW_TOLERANCE): { value: number | null; compared: number } {
  let within = 0;
  let diffs = 0;
  t.diffBuckets.forEach((n, i) => {
    diffs += n;
    // A bucket agrees only when all of it is within the tolerance (its upper bound is).
    if (i < SHADOW_DIFF_BUCKETS.length && SHADOW_DIFF_BUCKETS[i]! <= tolerance) within += n;
  });
  const compared = t.labelCompared + diffs;
  return { value: compared === 0 ? null : (t.agreed + within) / compared, compared };
}

/**
 * Pure verdicts of the shadow gates of a wave. `passed` is null (the engine waits) until the
 * candidate ran minSamples inferences (agreement: comparisons), true within every bound, false
 * otherwise. A gate without a bound fails, so a misconfiguration is visible.
 */
export function evaluateShadowGates(inputs: ShadowGateInputs): GateResult[] {
  const t = inputs.totals;
  return inputs.gates.map((gate): GateResult => {
    const metric = gate.metric as ShadowGateMetric;
    const minSamples = gate.minSamples ?? inputs.minSamples;
    const waiting = (samples: number, baselineSamples: number, value: number | null = null): GateResult => ({
      metric,
      passed: null,
      value,
      baseline: null,
      threshold: null,
      samples,
      baselineSamples,
      reason: `waiting for shadow samples: ${samples}/${minSamples} inferences`,
    });
    switch (metric) {
      case 'shadow_agreement': {
        const { value, compared } = shadowAgreement(t, gate.tolerance);
        if (gate.min === undefined)
          return {
            metric,
            passed: false,
            value,
            baseline: null,
            threshold: null,
            samples: compared,
            baselineSamples: 0,
            reason: 'shadow_agreement defines no min',
          };
        if (compared < minSamples || value === null) return waiting(compared, 0, value);
        const passed = value >= gate.min;
        return {
          metric,
          passed,
          value,
          baseline: null,
          threshold: gate.min,
          samples: compared,
          baselineSamples: 0,
          reason: `shadow agreement ${fmt(value)} ${passed ? '>=' : '<'} ${fmt(gate.min)} over ${compared} compared inferences`,
        };
      }
      case 'shadow_latency_p95':
      case 'shadow_error_rate': {
        const latency = metric === 'shadow_latency_p95';
        const value = latency ? percentileFromBuckets(t.latencyBuckets, 0.95) : t.count === 0 ? null : t.errors / t.count;
        const baseline = latency ? percentileFromBuckets(t.active.latencyBuckets, 0.95) : t.active.count === 0 ? null : t.active.errors / t.active.count;
        const relative = latency ? gate.maxRatio : gate.maxIncrease;
        const base = { metric, samples: t.count, baselineSamples: t.active.count };
        if (relative === undefined && gate.max === undefined)
          return { ...base, passed: false, value, baseline, threshold: null, reason: `gate ${metric} defines no bound` };
        if (t.count < minSamples || (relative !== undefined && t.active.count < minSamples)) return { ...waiting(t.count, t.active.count, value), baseline };
        const bounds: number[] = [];
        if (gate.max !== undefined) bounds.push(gate.max);
        if (relative !== undefined && baseline !== null) bounds.push(latency ? baseline * relative : baseline + relative);
        if (value === null || bounds.length === 0) return { ...base, passed: null, value, baseline, threshold: null, reason: 'no observations to compare' };
        const threshold = Math.min(...bounds);
        const passed = value <= threshold;
        return {
          ...base,
          passed,
          value,
          baseline,
          threshold,
          reason: `${metric} ${fmt(value)} ${passed ? '<=' : '>'} ${fmt(threshold)} (active version on the same devices: ${fmt(baseline)})`,
        };
      }
      case 'shadow_psi': {
        const threshold = gate.max ?? DEFAULT_PSI_MAX;
        const samples = Object.values(t.predictions).reduce((a, b) => a + b, 0);
        const reference =
          inputs.activeReference ?? (Object.keys(t.active.predictions).length > 0 ? { distribution: t.active.predictions, source: 'active answers' } : null);
        const refTotal = reference ? Object.values(reference.distribution).reduce((a, b) => a + b, 0) : 0;
        if (samples < minSamples) return waiting(samples, refTotal);
        const value = reference ? psiAgainst(reference.distribution, t.predictions) : null;
        if (value === null || !reference)
          return { metric, passed: null, value: null, baseline: null, threshold, samples, baselineSamples: refTotal, reason: 'no reference distribution yet' };
        const passed = value <= threshold;
        return {
          metric,
          passed,
          value,
          baseline: 0,
          threshold,
          samples,
          baselineSamples: refTotal,
          reason: `shadow psi ${fmt(value)} vs ${reference.source} ${passed ? '<=' : '>'} ${fmt(threshold)}`,
        };
      }
    }
  });
}
