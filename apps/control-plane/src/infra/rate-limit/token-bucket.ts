import { type BucketPolicy, gcraPeek, gcraTake } from './gcra.js';

export type { BucketPolicy };

/** Keys kept at most; past it the least recently touched bucket goes (a full one would anyway). */
const DEFAULT_MAX_KEYS = 100_000;

/**
 * Token buckets by key (a source address), in memory (GCRA, gcra.ts: one number per key). Kept
 * per process: the limits of a single replica, and what every replica falls back to when the
 * shared store (redis-limit-store.ts) cannot be reached. The number of keys is bounded, so a spray
 * of addresses costs a bounded map; a key pushed out starts again with a full bucket, which only
 * gives back what its refill would have.
 */
export class TokenBuckets {
  private readonly tats = new Map<string, number>();

  constructor(
    private readonly policy: BucketPolicy,
    private readonly maxKeys = DEFAULT_MAX_KEYS,
  ) {}

  get enabled(): boolean {
    return this.policy.perSecond > 0;
  }

  /** Takes one token: 0 when there was one, else the milliseconds until there is one. */
  take(key: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    const previous = this.tats.get(key);
    const step = gcraTake(previous, now, this.policy);
    // Re-inserted so the map's order is least recently used first.
    if (previous !== undefined) this.tats.delete(key);
    else if (this.tats.size >= this.maxKeys) this.tats.delete(this.tats.keys().next().value!);
    this.tats.set(key, step.tat);
    return step.waitMs;
  }

  /** Milliseconds until `key` has a token (0: it has one now), without taking it. */
  peek(key: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    return gcraPeek(this.tats.get(key), now, this.policy);
  }

  get size(): number {
    return this.tats.size;
  }
}
