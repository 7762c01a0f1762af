import { LATENCY_BUCKET_COUNT, latencyBucketIndex, scoreBucketKey, type TelemetryMessage } from '@fleetline/protocol';

/** One inference result as the on-device application reports it. */
export interface InferenceSample {
  model: string;
  latencyMs: number;
  ok: boolean;
  label?: string;
  score?: number;
}

export type TelemetryAggregate = Omit<TelemetryMessage, 'v' | 'seq' | 'vitals' | 'dropped'>;

interface Bucket {
  model: string;
  version: string;
  variant: string | undefined;
  count: number;
  errors: number;
  latencyBuckets: number[];
  latencySumMs: number;
  predictions: Map<string, number>;
}

/** Labels beyond this many distinct values per interval are folded into "other" (the wire allows 256). */
export const MAX_LABELS = 255;
const OTHER_LABEL = 'other';

/**
 * Per-interval, per-(model, version, build) aggregate of inference results. Latencies go into the
 * protocol's fixed buckets, so the control plane can sum histograms across devices and derive
 * fleet percentiles without any device sending raw samples.
 */
export class TelemetryAggregator {
  private buckets = new Map<string, Bucket>();
  private intervalStart: Date;

  constructor(now: Date = new Date()) {
    this.intervalStart = now;
  }

  /** Records one sample against the version active for its model when it was reported. */
  record(sample: InferenceSample, version: string, variant?: string): void {
    const key = `${sample.model}@${version}#${variant ?? ''}`;
    let b = this.buckets.get(key);
    if (!b) {
      b = {
        model: sample.model,
        version,
        variant,
        count: 0,
        errors: 0,
        latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
        latencySumMs: 0,
        predictions: new Map(),
      };
      this.buckets.set(key, b);
    }
    b.count++;
    if (!sample.ok) b.errors++;
    const latency = Number.isFinite(sample.latencyMs) && sample.latencyMs >= 0 ? sample.latencyMs : 0;
    b.latencyBuckets[latencyBucketIndex(latency)]!++;
    b.latencySumMs += latency;
    let label: string | undefined;
    if (sample.label !== undefined) label = sample.label.slice(0, 64);
    else if (sample.score !== undefined && Number.isFinite(sample.score)) label = scoreBucketKey(sample.score);
    if (label !== undefined && sample.ok) {
      if (!b.predictions.has(label) && b.predictions.size >= MAX_LABELS) label = OTHER_LABEL;
      b.predictions.set(label, (b.predictions.get(label) ?? 0) + 1);
    }
  }

  /**
   * Closes the interval: one aggregate per model version that saw traffic, plus an empty one for
   * each active version that saw none (so "no traffic" is visible, not silent).
   */
  flush(now: Date, activeVersions: ReadonlyArray<{ model: string; version: string; variant?: string | undefined }> = []): TelemetryAggregate[] {
    for (const a of activeVersions) {
      const key = `${a.model}@${a.version}#${a.variant ?? ''}`;
      if (!this.buckets.has(key)) {
        this.buckets.set(key, {
          model: a.model,
          version: a.version,
          variant: a.variant,
          count: 0,
          errors: 0,
          latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
          latencySumMs: 0,
          predictions: new Map(),
        });
      }
    }
    const out: TelemetryAggregate[] = [...this.buckets.values()].map((b) => ({
      model: b.model,
      version: b.version,
      ...(b.variant ? { variant: b.variant } : {}),
      intervalStart: this.intervalStart.toISOString(),
      intervalEnd: now.toISOString(),
      count: b.count,
      errors: b.errors,
      latencyBuckets: b.latencyBuckets,
      latencySumMs: Math.round(b.latencySumMs * 1000) / 1000,
      predictions: Object.fromEntries(b.predictions),
    }));
    this.buckets = new Map();
    this.intervalStart = now;
    return out;
  }
}
