import { LATENCY_BUCKET_COUNT, latencyBucketIndex, scoreBucketKey, type TelemetryMessage } from '@fleetline/protocol';

/** One inference result as the on-device application reports it. */
export interface InferenceSample {
  model: string;
  latencyMs: number;
  ok: boolean;
  label?: string;
  score?: number;
  /** What the application gave the active model, for a shadow candidate (never sent off the device). */
  input?: unknown;
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

/** One build's share of an interval: from when it became the model's build (or the interval began) until it stopped being it. */
interface Segment {
  start: Date;
  bucket: Bucket;
}

function emptyBucket(model: string, version: string, variant: string | undefined): Bucket {
  return {
    model,
    version,
    variant,
    count: 0,
    errors: 0,
    latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
    latencySumMs: 0,
    predictions: new Map(),
  };
}

function aggregate(b: Bucket, start: Date, end: Date): TelemetryAggregate {
  return {
    model: b.model,
    version: b.version,
    ...(b.variant ? { variant: b.variant } : {}),
    intervalStart: start.toISOString(),
    intervalEnd: end.toISOString(),
    count: b.count,
    errors: b.errors,
    latencyBuckets: b.latencyBuckets,
    latencySumMs: Math.round(b.latencySumMs * 1000) / 1000,
    predictions: Object.fromEntries(b.predictions),
  };
}

/**
 * Per-interval, per-(model, version, build) aggregate of inference results. Latencies go into the
 * protocol's fixed buckets, so the control plane can sum histograms across devices and derive
 * fleet percentiles without any device sending raw samples.
 *
 * A model runs one build at a time, so when its build changes within an interval the interval is
 * split there: the old build's aggregate ends where the new one's begins. Each aggregate then
 * covers only the time its build ran, and two builds of one version never report the same
 * stretch of time (the control plane refuses a version's overlapping intervals as a replay).
 */
export class TelemetryAggregator {
  /** Per model, the build running now and since when (within this interval). */
  private open = new Map<string, Segment>();
  /** Segments of this interval that ended at a build change, in the order they ended. */
  private closed: TelemetryAggregate[] = [];
  /** Per model, where this interval's last segment ended: a later one starts there, not at the interval start. */
  private closedAt = new Map<string, Date>();
  private intervalStart: Date;

  constructor(now: Date = new Date()) {
    this.intervalStart = now;
  }

  /** Records one sample against the version active for its model when it was reported (`at`: when, by default now). */
  record(sample: InferenceSample, version: string, variant?: string, at?: Date): void {
    const b = this.segment(sample.model, version, variant, at, this.closedAt.get(sample.model) ?? this.intervalStart).bucket;
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
   * The build a model runs changed at `at` (no version: the model stopped running): the running
   * build's segment ends there, and the new one's starts there.
   */
  switchBuild(model: string, version: string | undefined, variant: string | undefined, at: Date = new Date()): void {
    if (version === undefined) this.close(model, at);
    else this.segment(model, version, variant, at, at);
  }

  /** The model's running segment for this build; another build's ends at `at` (default now) and a new one starts. */
  private segment(model: string, version: string, variant: string | undefined, at: Date | undefined, startIfNone: Date): Segment {
    const current = this.open.get(model);
    if (current && current.bucket.version === version && current.bucket.variant === variant) return current;
    const start = current ? this.close(model, at ?? new Date()) : startIfNone;
    const segment: Segment = { start, bucket: emptyBucket(model, version, variant) };
    this.open.set(model, segment);
    return segment;
  }

  /** Ends the model's running segment at `at` (never before it began) and answers where it ended. */
  private close(model: string, at: Date): Date {
    const current = this.open.get(model);
    if (!current) return at;
    const end = at > current.start ? at : current.start;
    this.open.delete(model);
    // Empty and no time at all: nothing to say (an idle build is still reported for the time it ran).
    if (current.bucket.count > 0 || end > current.start) this.closed.push(aggregate(current.bucket, current.start, end));
    this.closedAt.set(model, end);
    return end;
  }

  /**
   * Closes the interval: one aggregate per build segment (one per model version that saw traffic,
   * or two and more when a model's build changed within the interval), plus an empty one for each
   * active version that saw none (so "no traffic" is visible, not silent).
   */
  flush(now: Date, activeVersions: ReadonlyArray<{ model: string; version: string; variant?: string | undefined }> = []): TelemetryAggregate[] {
    for (const a of activeVersions) this.segment(a.model, a.version, a.variant, now, this.closedAt.get(a.model) ?? this.intervalStart);
    const out = [...this.closed];
    for (const [model, s] of this.open) {
      const end = now > s.start ? now : s.start;
      if (s.bucket.count > 0 || end > s.start || !this.closedAt.has(model)) out.push(aggregate(s.bucket, s.start, end));
    }
    this.open = new Map();
    this.closed = [];
    this.closedAt = new Map();
    this.intervalStart = now;
    return out;
  }
}
