/**
 * Contract between rollouts and telemetry: the rollout engine asks whether a wave's canary
 * cohort is healthy compared with the baseline cohort over the same window. Telemetry owns the
 * numbers (HealthGateService implements this); rollouts owns what to do with the answer.
 */
export const GATE_METRICS = ['latency_p50', 'latency_p95', 'latency_p99', 'error_rate', 'psi'] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

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
