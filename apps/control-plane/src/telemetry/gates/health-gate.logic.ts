import { isShadowMetric, type GateResult, type GateSpec } from './health-gate.contract.js';
import { psiAgainst, summarize, type TelemetryAggregate } from './telemetry-stats.js';

/** PSI bound used when a psi gate names none: 0.2 is the customary "significant shift" level. */
export const DEFAULT_PSI_MAX = 0.2;

export interface GateInputs {
  gates: readonly GateSpec[];
  /** Wave-level minimum of inferences on each side before a gate decides. */
  minSamples: number;
  candidate: TelemetryAggregate;
  /** Baseline cohort over the same window; null when the rollout has no baseline version. */
  baseline: TelemetryAggregate | null;
  /**
   * Distribution the candidate's predictions are compared with for `psi` (see HealthGateService
   * for which one is chosen); null when none is known yet.
   */
  psiReference: { distribution: Record<string, number>; source: string } | null;
}

const percentileOf = { latency_p50: 'p50', latency_p95: 'p95', latency_p99: 'p99' } as const;

const fmt = (n: number | null): string => (n === null ? 'n/a' : Number.isInteger(n) ? String(n) : n.toFixed(4));

/**
 * Pure comparison of a candidate cohort against its baseline, gate by gate. `passed` is null
 * (undecided: the rollout engine waits) when either side has fewer inferences than minSamples,
 * true when the candidate is within every bound the gate sets, false otherwise.
 */
export function evaluateGates(inputs: GateInputs): GateResult[] {
  const candidate = summarize(inputs.candidate);
  const baseline = inputs.baseline ? summarize(inputs.baseline) : null;
  return inputs.gates.map((gate): GateResult => {
    const minSamples = gate.minSamples ?? inputs.minSamples;
    const samples = candidate.inferences;
    const baselineSamples = baseline?.inferences ?? 0;
    const base = { metric: gate.metric, samples, baselineSamples };

    if (gate.metric === 'psi') {
      const reference = inputs.psiReference;
      const refTotal = reference ? Object.values(reference.distribution).reduce((a, b) => a + b, 0) : 0;
      const threshold = gate.max ?? DEFAULT_PSI_MAX;
      if (samples < minSamples) {
        return {
          ...base,
          baselineSamples: refTotal,
          passed: null,
          value: null,
          baseline: null,
          threshold,
          reason: `waiting for samples: ${samples}/${minSamples} inferences`,
        };
      }
      if (!reference || refTotal === 0) {
        return { ...base, baselineSamples: refTotal, passed: null, value: null, baseline: null, threshold, reason: 'no reference distribution yet' };
      }
      const value = psiAgainst(reference.distribution, candidate.predictions);
      if (value === null) {
        return { ...base, baselineSamples: refTotal, passed: null, value: null, baseline: null, threshold, reason: 'candidate reported no predictions' };
      }
      const passed = value <= threshold;
      return {
        ...base,
        baselineSamples: refTotal,
        passed,
        value,
        baseline: 0,
        threshold,
        reason: `psi ${fmt(value)} vs ${reference.source} reference ${passed ? '<=' : '>'} ${fmt(threshold)}`,
      };
    }

    if (isShadowMetric(gate.metric)) {
      // Measured on the candidate running beside the active version, not on cohorts: shadow-gate.logic.ts.
      return { ...base, passed: null, value: null, baseline: null, threshold: null, reason: `${gate.metric} is judged from shadow telemetry` };
    }
    const relative = gate.metric === 'error_rate' ? gate.maxIncrease : gate.maxRatio;
    if (relative === undefined && gate.max === undefined) {
      // A gate without a bound cannot pass honestly; failing makes the misconfiguration visible.
      return { ...base, passed: false, value: null, baseline: null, threshold: null, reason: `gate ${gate.metric} defines no bound` };
    }
    const value = gate.metric === 'error_rate' ? candidate.errorRate : candidate.latency[percentileOf[gate.metric]];
    const baselineValue = baseline ? (gate.metric === 'error_rate' ? baseline.errorRate : baseline.latency[percentileOf[gate.metric]]) : null;

    if (samples < minSamples) {
      return { ...base, passed: null, value, baseline: baselineValue, threshold: null, reason: `waiting for samples: ${samples}/${minSamples} inferences` };
    }
    const bounds: number[] = [];
    if (gate.max !== undefined) bounds.push(gate.max);
    if (relative !== undefined) {
      if (inputs.baseline === null) {
        // No baseline version (first rollout of a model): a relative bound has nothing to relate
        // to, so only an absolute `max` can decide.
        if (gate.max === undefined) {
          return { ...base, passed: true, value, baseline: null, threshold: null, reason: 'no baseline version: relative bound not applicable' };
        }
      } else if (baselineSamples < minSamples) {
        return {
          ...base,
          passed: null,
          value,
          baseline: baselineValue,
          threshold: null,
          reason: `waiting for baseline samples: ${baselineSamples}/${minSamples} inferences`,
        };
      } else if (baselineValue !== null) {
        bounds.push(gate.metric === 'error_rate' ? baselineValue + relative : baselineValue * relative);
      }
    }
    if (value === null) {
      return { ...base, passed: null, value, baseline: baselineValue, threshold: null, reason: 'candidate has no latency observations' };
    }
    const threshold = bounds.length > 0 ? Math.min(...bounds) : null;
    if (threshold === null) {
      return { ...base, passed: null, value, baseline: baselineValue, threshold, reason: 'baseline has no observations' };
    }
    const passed = value <= threshold;
    return {
      ...base,
      passed,
      value,
      baseline: baselineValue,
      threshold,
      reason: `${gate.metric} ${fmt(value)} ${passed ? '<=' : '>'} ${fmt(threshold)} (baseline ${fmt(baselineValue)})`,
    };
  });
}
