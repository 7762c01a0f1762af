import { LATENCY_BUCKET_COUNT, percentileFromBuckets, populationStabilityIndex } from '@fleetline/protocol';

/**
 * Mergeable aggregate of telemetry: what a rollup row, a group of rollup rows or a group of raw
 * samples sums to. Percentiles are only ever computed from summed buckets (never averaged).
 */
export interface TelemetryAggregate {
  count: number;
  errors: number;
  latencyBuckets: number[];
  latencySumMs: number;
  predictions: Record<string, number>;
  /** Device-intervals that contributed (one per sample). */
  samples: number;
  cpuPercentSum: number;
  cpuPercentN: number;
  memoryRssBytesSum: number;
  memoryRssBytesN: number;
  memoryFreeBytesSum: number;
  memoryFreeBytesN: number;
  temperatureCSum: number;
  temperatureCN: number;
}

export interface TelemetryStats {
  inferences: number;
  errors: number;
  /** errors / inferences; null without inferences. */
  errorRate: number | null;
  /** Device-intervals (samples) behind these numbers. */
  samples: number;
  latency: { p50: number | null; p95: number | null; p99: number | null; meanMs: number | null; buckets: number[] };
  predictions: Record<string, number>;
  vitals: { cpuPercent: number | null; memoryRssBytes: number | null; memoryFreeBytes: number | null; temperatureC: number | null };
}

export function emptyAggregate(): TelemetryAggregate {
  return {
    count: 0,
    errors: 0,
    latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
    latencySumMs: 0,
    predictions: {},
    samples: 0,
    cpuPercentSum: 0,
    cpuPercentN: 0,
    memoryRssBytesSum: 0,
    memoryRssBytesN: 0,
    memoryFreeBytesSum: 0,
    memoryFreeBytesN: 0,
    temperatureCSum: 0,
    temperatureCN: 0,
  };
}

/** Element-wise sum; the shorter array counts as zero-padded (buckets from any source line up by index). */
export function addBuckets(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(Math.max(a.length, b.length));
  for (let i = 0; i < out.length; i++) out[i] = (a[i] ?? 0) + (b[i] ?? 0);
  return out;
}

export function addDistributions(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [label, n] of Object.entries(b)) out[label] = (out[label] ?? 0) + n;
  return out;
}

export function mergeAggregates(a: TelemetryAggregate, b: TelemetryAggregate): TelemetryAggregate {
  return {
    count: a.count + b.count,
    errors: a.errors + b.errors,
    latencyBuckets: addBuckets(a.latencyBuckets, b.latencyBuckets),
    latencySumMs: a.latencySumMs + b.latencySumMs,
    predictions: addDistributions(a.predictions, b.predictions),
    samples: a.samples + b.samples,
    cpuPercentSum: a.cpuPercentSum + b.cpuPercentSum,
    cpuPercentN: a.cpuPercentN + b.cpuPercentN,
    memoryRssBytesSum: a.memoryRssBytesSum + b.memoryRssBytesSum,
    memoryRssBytesN: a.memoryRssBytesN + b.memoryRssBytesN,
    memoryFreeBytesSum: a.memoryFreeBytesSum + b.memoryFreeBytesSum,
    memoryFreeBytesN: a.memoryFreeBytesN + b.memoryFreeBytesN,
    temperatureCSum: a.temperatureCSum + b.temperatureCSum,
    temperatureCN: a.temperatureCN + b.temperatureCN,
  };
}

export function mergeAll(aggregates: readonly TelemetryAggregate[]): TelemetryAggregate {
  return aggregates.reduce(mergeAggregates, emptyAggregate());
}

const ratio = (sum: number, n: number): number | null => (n > 0 ? sum / n : null);

export function summarize(a: TelemetryAggregate): TelemetryStats {
  const bucketTotal = a.latencyBuckets.reduce((x, y) => x + y, 0);
  return {
    inferences: a.count,
    errors: a.errors,
    errorRate: a.count > 0 ? a.errors / a.count : null,
    samples: a.samples,
    latency: {
      p50: percentileFromBuckets(a.latencyBuckets, 0.5),
      p95: percentileFromBuckets(a.latencyBuckets, 0.95),
      p99: percentileFromBuckets(a.latencyBuckets, 0.99),
      meanMs: bucketTotal > 0 ? a.latencySumMs / bucketTotal : null,
      buckets: a.latencyBuckets,
    },
    predictions: a.predictions,
    vitals: {
      cpuPercent: ratio(a.cpuPercentSum, a.cpuPercentN),
      memoryRssBytes: ratio(a.memoryRssBytesSum, a.memoryRssBytesN),
      memoryFreeBytes: ratio(a.memoryFreeBytesSum, a.memoryFreeBytesN),
      temperatureC: ratio(a.temperatureCSum, a.temperatureCN),
    },
  };
}

/** PSI of `actual` against a reference; null when either side is empty or there is no reference. */
export function psiAgainst(reference: Readonly<Record<string, number>> | null | undefined, actual: Readonly<Record<string, number>>): number | null {
  if (!reference) return null;
  return populationStabilityIndex(reference, actual);
}

const num = (v: unknown): number => {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
};

function numArray(v: unknown): number[] {
  if (Array.isArray(v)) return v.map(num);
  // A driver that does not parse arrays hands back the literal: '{1,2,3}'.
  if (typeof v === 'string' && v.startsWith('{'))
    return v
      .slice(1, -1)
      .split(',')
      .filter((s) => s.length > 0)
      .map(num);
  return [];
}

function distribution(v: unknown): Record<string, number> {
  const obj: unknown = typeof v === 'string' ? JSON.parse(v) : v;
  const out: Record<string, number> = {};
  if (obj && typeof obj === 'object') for (const [k, n] of Object.entries(obj as Record<string, unknown>)) out[k] = num(n);
  return out;
}

/**
 * Row of an aggregate query -> TelemetryAggregate. node-postgres returns bigint and numeric as
 * strings (and bigint[] as string[]), PGlite as numbers: both are normalised here.
 */
export function aggregateFromRow(row: Record<string, unknown>): TelemetryAggregate {
  return {
    count: num(row['count']),
    errors: num(row['errors']),
    latencyBuckets: addBuckets(new Array<number>(LATENCY_BUCKET_COUNT).fill(0), numArray(row['latency_buckets'])),
    latencySumMs: num(row['latency_sum_ms']),
    predictions: distribution(row['predictions']),
    samples: num(row['samples']),
    cpuPercentSum: num(row['cpu_percent_sum']),
    cpuPercentN: num(row['cpu_percent_n']),
    memoryRssBytesSum: num(row['memory_rss_bytes_sum']),
    memoryRssBytesN: num(row['memory_rss_bytes_n']),
    memoryFreeBytesSum: num(row['memory_free_bytes_sum']),
    memoryFreeBytesN: num(row['memory_free_bytes_n']),
    temperatureCSum: num(row['temperature_c_sum']),
    temperatureCN: num(row['temperature_c_n']),
  };
}

export function distributionFromValue(v: unknown): Record<string, number> {
  return distribution(v);
}
