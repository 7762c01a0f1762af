/** How a model version behaves on simulated devices. */
export interface Behaviour {
  /** Mean inference latency (ms). */
  latencyMs: number;
  /** Fraction of inferences that fail. */
  errorRate: number;
  /** 0..1: moves the prediction distribution away from the baseline (drift). */
  shift: number;
  /** Probability the post-activation health check fails. */
  healthFail: number;
  /** Probability a download attempt fails. */
  downloadFail: number;
  /** Inferences per second per device. */
  rate: number;
  /** As a shadow candidate: share of inferences answered differently from the active model. */
  disagreement: number;
}

export const DEFAULT_BEHAVIOUR: Behaviour = { latencyMs: 20, errorRate: 0.01, shift: 0, healthFail: 0, downloadFail: 0, rate: 1, disagreement: 0 };

const KEYS = new Set<keyof Behaviour>(['latencyMs', 'errorRate', 'shift', 'healthFail', 'downloadFail', 'rate', 'disagreement']);
const PROBABILITIES = new Set<keyof Behaviour>(['errorRate', 'shift', 'healthFail', 'downloadFail', 'disagreement']);

export type BehaviourTable = ReadonlyMap<string, Behaviour>;

/**
 * Parses `--behaviour` values like `1.2.0:latencyMs=80,errorRate=0.05,shift=0.5,healthFail=1`.
 * `*` as the version sets the default for versions not listed. Throws naming the bad part.
 */
export function parseBehaviours(specs: readonly string[]): Map<string, Behaviour> {
  const table = new Map<string, Behaviour>();
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    if (colon <= 0) throw new Error(`behaviour "${spec}": expected VERSION:key=value,...`);
    const version = spec.slice(0, colon);
    const b: Behaviour = { ...(table.get('*') ?? DEFAULT_BEHAVIOUR) };
    for (const pair of spec
      .slice(colon + 1)
      .split(',')
      .filter(Boolean)) {
      const [k, v] = pair.split('=');
      const key = k as keyof Behaviour;
      const n = Number(v);
      if (!KEYS.has(key)) throw new Error(`behaviour "${spec}": unknown key ${k} (known: ${[...KEYS].join(', ')})`);
      if (v === undefined || v === '' || !Number.isFinite(n) || n < 0) throw new Error(`behaviour "${spec}": ${k} must be a non-negative number`);
      if (PROBABILITIES.has(key) && n > 1) throw new Error(`behaviour "${spec}": ${k} must be within 0..1`);
      b[key] = n;
    }
    table.set(version, b);
  }
  return table;
}

export function behaviourFor(table: BehaviourTable, version: string): Behaviour {
  return table.get(version) ?? table.get('*') ?? DEFAULT_BEHAVIOUR;
}

/** Baseline label distribution; `shift` blends it towards its reverse. */
export const LABELS = ['cat', 'dog', 'bird', 'car', 'person'] as const;
const BASE = [0.4, 0.25, 0.15, 0.12, 0.08];

export function labelDistribution(shift: number): number[] {
  const reversed = [...BASE].reverse();
  return BASE.map((p, i) => (1 - shift) * p + shift * reversed[i]!);
}

export function sampleLabel(shift: number, random: () => number = Math.random): string {
  const dist = labelDistribution(shift);
  let r = random();
  for (let i = 0; i < dist.length; i++) {
    r -= dist[i]!;
    if (r <= 0) return LABELS[i]!;
  }
  return LABELS[LABELS.length - 1]!;
}

/** Latency sample: exponential-ish spread around the mean, never negative. */
export function sampleLatency(meanMs: number, random: () => number = Math.random): number {
  return Math.max(0.1, -Math.log(1 - random() * 0.999) * meanMs);
}
