// Helpers over the telemetry API answers (TelemetryStats: inferences, errors, errorRate,
// latency {p50, p95, p99}, predictions; series points add `start`).

const num = (v) => (v === null || v === undefined || Number.isNaN(Number(v)) ? null : Number(v));

export const latency = (stats, q) => num(stats?.latency?.[q]);
export const errorRate = (stats) => num(stats?.errorRate);
export const inferences = (stats) => num(stats?.inferences);

/** PSI shapes: `{ value }` (per version) or `{ vsBaselineReference, vsOwnReference }` (per cohort). */
export function psiValue(psi) {
  if (psi === null || psi === undefined) return null;
  if (typeof psi === 'number') return psi;
  return num(psi.value ?? psi.vsBaselineReference ?? psi.vsOwnReference);
}

/**
 * Population stability index of `actual` against `expected` (label -> count), the same formula
 * as the control plane's (protocol populationStabilityIndex): empty bins get an epsilon share.
 */
export function populationStabilityIndex(expected, actual, epsilon = 1e-4) {
  const labels = new Set([...Object.keys(expected ?? {}), ...Object.keys(actual ?? {})]);
  const sum = (o) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);
  const eTotal = sum(expected);
  const aTotal = sum(actual);
  if (eTotal === 0 || aTotal === 0) return null;
  let psi = 0;
  for (const label of labels) {
    const e = Math.max((expected[label] ?? 0) / eTotal, epsilon);
    const a = Math.max((actual[label] ?? 0) / aTotal, epsilon);
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}

/** Chart points of one metric over a series (x = bucket start in ms). */
export function toPoints(series, metric) {
  return (series ?? [])
    .map((p) => ({ x: Date.parse(p.start), y: metric(p) }))
    .filter((p) => Number.isFinite(p.x))
    .sort((a, b) => a.x - b.x);
}
