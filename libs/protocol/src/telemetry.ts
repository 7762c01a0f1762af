/**
 * Fixed latency bucket upper bounds in milliseconds, shared by every device, so fleet-wide
 * percentiles come from summed bucket counts (mergeable), never from averaged percentiles.
 * A sample lands in the first bucket whose bound is >= its value; the last bucket is +Inf.
 */
export const LATENCY_BUCKETS_MS = [
  1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400, 500, 650, 800, 1000, 1500, 2000, 3000, 5000, 10000,
] as const;
/** Number of latency buckets on the wire: one per bound plus the +Inf bucket. */
export const LATENCY_BUCKET_COUNT = LATENCY_BUCKETS_MS.length + 1;

export function latencyBucketIndex(ms: number): number {
  // Linear scan is fine: 29 bounds, and it keeps the function obviously correct.
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= LATENCY_BUCKETS_MS[i]!) return i;
  return LATENCY_BUCKETS_MS.length;
}

/**
 * Percentile from bucket counts, interpolating linearly inside the bucket (the same estimate
 * Prometheus' histogram_quantile makes). The +Inf bucket reports the last finite bound.
 */
export function percentileFromBuckets(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && seen + c >= rank) {
      if (i >= LATENCY_BUCKETS_MS.length) return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]!;
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_MS[i - 1]!;
      const upper = LATENCY_BUCKETS_MS[i]!;
      return lower + ((upper - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]!;
}

/** Number of score buckets when a model reports a numeric score instead of a label: [0,0.1), ..., [0.9,1]. */
export const SCORE_BUCKET_COUNT = 10;

/** Prediction distribution key for a score in [0, 1]. */
export function scoreBucketKey(score: number): string {
  const clamped = Math.min(Math.max(score, 0), 1);
  const index = Math.min(Math.floor(clamped * SCORE_BUCKET_COUNT), SCORE_BUCKET_COUNT - 1);
  return `score:${index}`;
}

/**
 * Population stability index of `actual` against `expected` (both label -> count).
 * PSI = sum((a - e) * ln(a / e)) over the union of labels, with an epsilon for empty bins so a
 * label seen on one side only counts as a large (finite) shift rather than infinity.
 */
export function populationStabilityIndex(expected: Record<string, number>, actual: Record<string, number>, epsilon = 1e-4): number | null {
  const labels = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  const eTotal = Object.values(expected).reduce((a, b) => a + b, 0);
  const aTotal = Object.values(actual).reduce((a, b) => a + b, 0);
  if (eTotal === 0 || aTotal === 0) return null;
  let psi = 0;
  for (const label of labels) {
    const e = Math.max((expected[label] ?? 0) / eTotal, epsilon);
    const a = Math.max((actual[label] ?? 0) / aTotal, epsilon);
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}
