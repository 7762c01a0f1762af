/**
 * Contract between rollouts and telemetry: the rollout engine asks whether a wave's canary
 * cohort is healthy compared with the baseline cohort over the same window. Telemetry owns the
 * numbers (HealthGateService implements this); rollouts owns what to do with the answer.
 */
export const GATE_METRICS = [
  'latency_p50',
  'latency_p95',
  'latency_p99',
  'error_rate',
  'psi',
  'shadow_agreement',
  'shadow_latency_p95',
  'shadow_error_rate',
  'shadow_psi',
] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

/**
 * Metrics of a shadow wave (shadow-gate.logic.ts), measured on the candidate that runs beside the
 * active version on the same devices and inputs: agreement of answers (min), p95 latency (maxRatio
 * to the active version on the same devices, or max), error rate (max, or maxIncrease over the
 * active version), PSI of the candidate's predictions against the active version's reference (max).
 */
export const SHADOW_GATE_METRICS = ['shadow_agreement', 'shadow_latency_p95', 'shadow_error_rate', 'shadow_psi'] as const;
export type ShadowGateMetric = (typeof SHADOW_GATE_METRICS)[number];

export function isShadowMetric(metric: GateMetric): metric is ShadowGateMetric {
  return (SHADOW_GATE_METRICS as readonly string[]).includes(metric);
}

/**
 * One gate, e.g. `{ metric: 'latency_p95', maxRatio: 1.2 }` (candidate <= 1.2 x baseline),
 * `{ metric: 'error_rate', maxIncrease: 0.005 }` (candidate <= baseline + 0.5 points),
 * `{ metric: 'psi', max: 0.2 }` (drift of the candidate against its reference distribution).
 * `max` also works as an absolute bound for the other metrics.
 */
export interface GateSpec {
  metric: GateMetric;
  maxRatio?: number;
  maxIncrease?: number;
  max?: number;
  /** Lower bound (shadow_agreement). */
  min?: number;
  /** shadow_agreement of a regressor: answers whose absolute difference is at most this agree (default 0.01). */
  tolerance?: number;
  /** Overrides the wave-level minSamples for this gate. */
  minSamples?: number;
}

export interface GateEvaluationInput {
  model: string;
  candidateVersion: string;
  /** Version the baseline cohort runs (the rollout target's previous version); null when there is none. */
  baselineVersion: string | null;
  rolloutId: string;
  /** Waves whose devices form the candidate cohort. */
  waves: number[];
  gates: GateSpec[];
  minSamples: number;
  windowSeconds: number;
  now: Date;
}

export interface GateResult {
  metric: GateMetric;
  /** true: within bounds; false: breached; null: not enough samples yet to decide. */
  passed: boolean | null;
  value: number | null;
  baseline: number | null;
  threshold: number | null;
  samples: number;
  baselineSamples: number;
  reason: string;
  /**
   * Set on a build-level result: the gate judged on the devices that run this build (variant) of
   * the candidate, against the baseline's build of the same name when it has one. A build's breach
   * fails the gate as the version's does; a build with too few samples does not hold the wave.
   */
  variant?: string;
}

export abstract class HealthGateService {
  abstract evaluate(input: GateEvaluationInput): Promise<GateResult[]>;
}
