import {
  LATENCY_BUCKET_COUNT,
  latencyBucketIndex,
  SHADOW_DIFF_BUCKET_COUNT,
  scoreBucketKey,
  shadowDiffBucketIndex,
  type ShadowReport,
} from '@fleetline/protocol';
import type { Prediction } from './prediction.js';

/** Distinct candidate labels kept per interval; the rest are folded into "other" (the wire allows 256). */
const MAX_LABELS = 255;

/** What one interval of a shadow counted, before it is put on the wire (`report`). */
export class ShadowStats {
  mirrored = 0;
  dropped = 0;
  count = 0;
  errors = 0;
  compared = 0;
  agreed = 0;
  private latencySumMs = 0;
  private readonly latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  private readonly predictions = new Map<string, number>();
  private diffBuckets: number[] | undefined;
  private classified = false;

  /** One candidate inference: how long it took, what it answered (undefined: it failed), and what the active model answered. */
  record(latencyMs: number, candidate: Prediction | undefined, failed: boolean, active: Prediction | undefined): void {
    this.count++;
    const latency = Number.isFinite(latencyMs) && latencyMs >= 0 ? latencyMs : 0;
    this.latencySumMs += latency;
    this.latencyBuckets[latencyBucketIndex(latency)]!++;
    if (failed || candidate === undefined) {
      if (failed) this.errors++;
      return;
    }
    let key = 'label' in candidate ? candidate.label : scoreBucketKey(candidate.value);
    if (!this.predictions.has(key) && this.predictions.size >= MAX_LABELS) key = 'other';
    this.predictions.set(key, (this.predictions.get(key) ?? 0) + 1);
    if (active === undefined) return;
    if ('label' in candidate && 'label' in active) {
      this.classified = true;
      this.compared++;
      if (candidate.label === active.label) this.agreed++;
    } else if ('value' in candidate && 'value' in active) {
      this.compared++;
      const diffs = (this.diffBuckets ??= new Array<number>(SHADOW_DIFF_BUCKET_COUNT).fill(0));
      diffs[shadowDiffBucketIndex(Math.abs(candidate.value - active.value))]!++;
    }
  }

  isEmpty(): boolean {
    return this.mirrored === 0 && this.dropped === 0 && this.count === 0;
  }

  report(version: string, rolloutId: string | undefined, ended: boolean): ShadowReport {
    return {
      version,
      ...(rolloutId !== undefined ? { rolloutId } : {}),
      mirrored: this.mirrored,
      dropped: this.dropped,
      count: this.count,
      errors: this.errors,
      latencyBuckets: [...this.latencyBuckets],
      latencySumMs: Math.round(this.latencySumMs * 1000) / 1000,
      predictions: Object.fromEntries(this.predictions),
      compared: this.compared,
      ...(this.classified ? { agreed: this.agreed } : {}),
      ...(this.diffBuckets ? { diffBuckets: [...this.diffBuckets] } : {}),
      ended,
    };
  }
}
