import type { TelemetryMessage } from '@fleetline/protocol';
import type { TelemetryLimits } from '../../infra/config/config.schema.js';

/**
 * Why a well-formed telemetry message is refused: what it claims could skew a rollout decision.
 * The set is closed so it can be a metric label (fleetline_telemetry_rejected_total{reason}).
 *   - rate: more inferences than the configured rate allows over the message's interval;
 *   - interval: the interval is longer than TELEMETRY_MAX_INTERVAL_SECONDS;
 *   - counter: more errors, or more latency observations, than inferences;
 *   - future: the interval ends further ahead of our clock than the allowed skew;
 *   - seq: the seq jumps more than TELEMETRY_MAX_SEQ_GAP past the stored sample just before it;
 *   - overlap: a new seq for time the device already reported for that model version (a replay
 *     under a fresh seq would count the same inferences twice).
 */
export const TELEMETRY_REJECT_REASONS = ['rate', 'interval', 'counter', 'future', 'seq', 'overlap'] as const;
export type TelemetryRejectReason = (typeof TELEMETRY_REJECT_REASONS)[number];

export const DEFAULT_TELEMETRY_LIMITS: TelemetryLimits = {
  maxInferencesPerSecond: 10_000,
  maxIntervalSeconds: 3_600,
  maxClockSkewSeconds: 300,
  maxSeqGap: 100_000,
  deviceWeightFactor: 10,
};

export interface Rejection {
  reason: TelemetryRejectReason;
  detail: string;
}

/**
 * Checks of one message on its own (the ones needing the device's history run in SQL at write
 * time, set-based: see TelemetryIngestRepository). `start`/`end` are the parsed interval bounds.
 */
export function boundsProblem(m: TelemetryMessage, start: number, end: number, now: number, limits: TelemetryLimits): Rejection | undefined {
  const seconds = (end - start) / 1000;
  if (seconds > limits.maxIntervalSeconds) return { reason: 'interval', detail: `interval of ${seconds} s exceeds ${limits.maxIntervalSeconds} s` };
  if (m.count > limits.maxInferencesPerSecond * seconds) {
    return { reason: 'rate', detail: `${m.count} inferences in ${seconds} s exceeds ${limits.maxInferencesPerSecond}/s` };
  }
  let observed = 0;
  for (const b of m.latencyBuckets) observed += b;
  if (m.errors > m.count || observed > m.count)
    return { reason: 'counter', detail: `errors ${m.errors} / latency observations ${observed} exceed count ${m.count}` };
  if (end > now + limits.maxClockSkewSeconds * 1000) return { reason: 'future', detail: `interval ends ${Math.round((end - now) / 1000)} s in the future` };
  return undefined;
}

/** One sample of a stream (a device's samples of one model version) as the history checks see it. */
export interface StreamSample {
  seq: number;
  intervalStart: number;
  intervalEnd: number;
}

/**
 * A sample's neighbours among the stream's stored samples, in the stream's order: interval end,
 * then seq (the order of the unique index (device_id, interval_end, seq)). For one agent, whose
 * seqs increase with its intervals, these are the stored samples with the greatest seq below the
 * sample's and the smallest seq above it; unlike seq alone, the order also holds across a wiped
 * agent that starts its seqs again at 0.
 */
export interface Neighbours {
  /** The last stored sample not after it (the same (interval end, seq) when it is a redelivery). */
  last?: StreamSample | undefined;
  /** The first stored sample after it. */
  next?: StreamSample | undefined;
}

/**
 * The history checks, as a pure function (the ingest SQL applies the same rule to a whole batch
 * against what is stored; the ingest service applies it between the samples of one batch). The
 * sample must fit between its neighbours: no seq jump past the one before it, and no overlap with
 * either (a fresh seq for time already reported is a replay, whichever side it lands on). A late
 * sample, lower in seq than one already stored (a redelivery after a reconnect, a queue drained out
 * of order), fits in the hole it belongs to. A redelivery (same seq and interval end as the one
 * stored) passes: the unique key makes it a counted duplicate.
 */
export function sequenceProblem(sample: StreamSample, { last, next }: Neighbours, maxSeqGap: number): TelemetryRejectReason | undefined {
  if (last && sample.seq === last.seq && sample.intervalEnd === last.intervalEnd) return undefined;
  if (last && sample.seq > last.seq + maxSeqGap) return 'seq';
  if (last && sample.intervalStart < last.intervalEnd) return 'overlap';
  if (next && next.intervalStart < sample.intervalEnd) return 'overlap';
  return undefined;
}

/** (interval end, seq) order: negative when `a` comes first. */
function streamOrder(a: StreamSample, b: StreamSample): number {
  return a.intervalEnd - b.intervalEnd || a.seq - b.seq;
}

/**
 * Where `sample` goes in `sorted` (a stream's samples in stream order) and its neighbours there,
 * found by bisection: what the ingest SQL's two index probes find among stored samples, for the
 * samples of one batch.
 */
export function neighboursIn(sorted: readonly StreamSample[], sample: StreamSample): Neighbours & { index: number } {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (streamOrder(sorted[mid]!, sample) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return { index: lo, last: sorted[lo - 1], next: sorted[lo] };
}

/**
 * Log2 bin of a sample's inference count, for the per-cohort histogram the device weight cap is
 * computed from: bin 0 holds 0 and 1, bin k holds [2^k, 2^(k+1)). 32 bins cover int32 counts.
 */
export const COUNT_BINS = 32;
export function countBin(count: number): number {
  return count <= 1 ? 0 : Math.min(COUNT_BINS - 1, Math.floor(Math.log2(count)));
}

/**
 * Most inferences one sample may contribute to a cohort's gate statistics: `factor` times the
 * upper bound of the median bin of the cohort's count histogram. The median cannot be moved far by
 * one device, however much it claims; a heavier sample is weighted down to the cap (its error rate
 * and latency shape are kept, its weight is not).
 */
export function weightCap(histogram: readonly number[], factor: number): number | null {
  let total = 0;
  for (const n of histogram) total += n;
  if (total === 0) return null;
  let run = 0;
  for (let i = 0; i < histogram.length; i++) {
    run += histogram[i] ?? 0;
    if (run * 2 >= total) return factor * 2 ** (i + 1);
  }
  return null;
}

/** Weight of a sample of `count` inferences under `cap` (1 = full weight). */
export function sampleWeight(count: number, cap: number | null): number {
  return cap === null || count <= cap ? 1 : cap / count;
}
