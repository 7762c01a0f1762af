/** A bucket's size and refill; `perSecond: 0` turns the limiter off (every call is allowed). */
export interface BucketPolicy {
  burst: number;
  perSecond: number;
}

/**
 * The token bucket as GCRA (generic cell rate algorithm, ITU-T I.371): instead of a token count
 * and a timestamp, one number per key, the "theoretical arrival time" `tat` at which the bucket
 * would be full again. A take is allowed while `tat` stays within `burst` emission intervals of
 * now. Being a single value, it is what a shared store updates atomically (redis-limit-store.ts
 * runs the same arithmetic in Lua); in memory and in Redis a policy means the same thing.
 * A key with no `tat` (or one in the past) has a full bucket.
 */
export interface GcraStep {
  /** 0: allowed; else milliseconds until the next token. */
  waitMs: number;
  /** The key's tat after the step (unchanged when refused). */
  tat: number;
}

const intervalMs = (policy: BucketPolicy): number => 1000 / policy.perSecond;

/** Takes one token at `now` (ms). */
export function gcraTake(tat: number | undefined, now: number, policy: BucketPolicy): GcraStep {
  const t = intervalMs(policy);
  const ahead = Math.max((tat ?? now) - now, 0);
  const over = overBy(ahead, t, policy.burst);
  if (over > 0) return { waitMs: Math.ceil(over), tat: tat ?? now };
  return { waitMs: 0, tat: now + ahead + t };
}

/** Milliseconds until a token is there at `now` (0: one is), without taking it. */
export function gcraPeek(tat: number | undefined, now: number, policy: BucketPolicy): number {
  if (tat === undefined) return 0;
  const over = overBy(Math.max(tat - now, 0), intervalMs(policy), policy.burst);
  return over > 0 ? Math.ceil(over) : 0;
}

/** How far past its allowance one more take would put a key that is `ahead` ms ahead of now (written so a fresh key gives exactly 0 or less). */
function overBy(ahead: number, t: number, burst: number): number {
  return ahead - (burst - 1) * t;
}

/** Milliseconds from `now` until a key at `tat` has a full bucket again, so may be forgotten. */
export function gcraIdleMs(tat: number, now: number): number {
  return Math.max(0, Math.ceil(tat - now));
}
