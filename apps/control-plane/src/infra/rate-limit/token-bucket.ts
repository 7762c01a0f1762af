/** A bucket's size and refill; `perSecond: 0` turns the limiter off (every call is allowed). */
export interface BucketPolicy {
  burst: number;
  perSecond: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Keys kept at most; past it the least recently touched bucket goes (a full one would anyway). */
const DEFAULT_MAX_KEYS = 100_000;

/**
 * Token buckets by key (a source address), in memory. Each key starts with `burst` tokens and
 * regains `perSecond` per second up to `burst`. Kept per process: with N replicas behind a load
 * balancer a source gets up to N times the rate, which is what a per-replica limit buys without a
 * shared store. The number of keys is bounded, so a spray of addresses costs a bounded map; a key
 * pushed out starts again with a full bucket, which only gives back what its refill would have.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

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
    const bucket = this.refill(key, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return this.waitMs(bucket);
  }

  /** Milliseconds until `key` has a token (0: it has one now), without taking it. */
  peek(key: string, now = Date.now()): number {
    if (!this.enabled) return 0;
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = Math.min(this.policy.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.policy.perSecond);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.policy.perSecond) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refill(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.policy.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.policy.perSecond);
      bucket.at = now;
      // Re-inserted so the map's order is least recently used first.
      this.buckets.delete(key);
    } else {
      bucket = { tokens: this.policy.burst, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, bucket);
    return bucket;
  }

  private waitMs(bucket: Bucket): number {
    return Math.ceil(((1 - bucket.tokens) / this.policy.perSecond) * 1000);
  }
}
