import { z } from 'zod';
import { LATENCY_BUCKET_COUNT } from './telemetry.js';

/**
 * Shadow evaluation: the device runs a candidate version beside the active one on the inputs the
 * application sends to the active one, without switching. The control plane asks for it with a
 * desired state of `action: "shadow"` carrying a `ShadowDirective`; the device reports what it saw
 * in the `shadow` block of the active version's telemetry for each interval (`ShadowReport`).
 * Inputs never leave the device: only aggregates do.
 */

/**
 * Upper bounds of the absolute-difference histogram of a regressor's candidate against its active
 * model (the last bucket is +Inf). Fixed, so histograms of every device add up.
 */
export const SHADOW_DIFF_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 100] as const;
export const SHADOW_DIFF_BUCKET_COUNT = SHADOW_DIFF_BUCKETS.length + 1;

export function shadowDiffBucketIndex(absDiff: number): number {
  for (let i = 0; i < SHADOW_DIFF_BUCKETS.length; i++) if (absDiff <= SHADOW_DIFF_BUCKETS[i]!) return i;
  return SHADOW_DIFF_BUCKETS.length;
}

/** Longest shadow a directive may ask for. */
export const MAX_SHADOW_SECONDS = 7 * 24 * 3600;

/**
 * What a device in a shadow wave does with the candidate of its `desired/{model}` message. When the
 * shadow ends the candidate is unloaded and its verified bytes stay staged (update state
 * `downloaded`): an install command for the same revision activates them without a second
 * download, like a download-only assignment; any other desired state replaces them.
 */
export const shadowDirectiveSchema = z.object({
  /** Share of the application's inferences mirrored to the candidate, in percent (0, 100]. */
  samplePercent: z.number().gt(0).max(100),
  /** The shadow ends once this many mirrored inferences were evaluated; absent: only the time limit ends it. */
  maxSamples: z.number().int().positive().max(100_000_000).optional(),
  /** The shadow ends this long after the candidate was loaded. */
  durationSeconds: z.number().int().positive().max(MAX_SHADOW_SECONDS),
});
export type ShadowDirective = z.infer<typeof shadowDirectiveSchema>;

const count = z.number().int().nonnegative();

/**
 * One interval of a shadow, carried by the telemetry message of the active version it ran beside
 * (`telemetryMessageSchema.shadow`), so the device's own active numbers of the same interval are
 * the baseline a latency ratio is taken against. Agreement is counted over the mirrored
 * inferences whose candidate answer came back (`compared`).
 */
export const shadowReportSchema = z
  .object({
    /** The candidate version evaluated. */
    version: z
      .string()
      .min(5)
      .max(128)
      .regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/, 'must be a semver version'),
    rolloutId: z.string().max(64).optional(),
    /** Inferences the application ran on the active model that were chosen for mirroring. */
    mirrored: count,
    /** Mirrored inferences dropped because the shadow queue was full (the application never waits). */
    dropped: count,
    /** Candidate inferences run (mirrored minus dropped, give or take those still queued). */
    count,
    errors: count,
    /** Candidate latency, counts per LATENCY_BUCKETS_MS bucket (+Inf last). */
    latencyBuckets: z.array(count).length(LATENCY_BUCKET_COUNT),
    latencySumMs: z.number().nonnegative(),
    /** The candidate's prediction distribution: label (or score bucket key) -> count. */
    predictions: z.record(z.string().max(64), count).refine((p) => Object.keys(p).length <= 256, 'at most 256 labels'),
    /** Inferences for which both answers are known and comparable. */
    compared: count,
    /** Classifiers: of `compared`, how many had the same top-1 label. */
    agreed: count.optional(),
    /** Regressors: |candidate - active| per SHADOW_DIFF_BUCKETS bucket (+Inf last). */
    diffBuckets: z.array(count).length(SHADOW_DIFF_BUCKET_COUNT).optional(),
    /** The shadow ended in this interval (sample count or time limit reached, or the directive withdrawn). */
    ended: z.boolean().default(false),
  })
  .refine((s) => s.agreed === undefined || s.agreed <= s.compared, { message: 'agreed cannot exceed compared', path: ['agreed'] })
  .refine((s) => s.compared <= s.count, { message: 'compared cannot exceed count', path: ['compared'] })
  .refine((s) => s.errors <= s.count, { message: 'errors cannot exceed count', path: ['errors'] });
export type ShadowReport = z.infer<typeof shadowReportSchema>;
