import type { RampSpec } from '../rollout.types.js';
import { rampAllowance } from './wave-math.js';

/** A ramp limits the notices in every window of this length (a sliding minute). */
export const RAMP_WINDOW_MS = 60_000;

/**
 * The ramp's rate (notices per minute) once `notifiedEver` devices were told: ratePerMinute ·
 * growthFactor^k, where k is the number of ramp minutes those devices filled (minute i holds
 * ratePerMinute · growthFactor^i, as in `rampAllowance`). The rate grows with the notices sent,
 * not with the clock: while nobody can be told (window closed, paused, in-flight cap, a wave
 * baking) the ramp stays where it was instead of jumping ahead.
 */
export function rampRate(ramp: RampSpec, notifiedEver: number): number {
  const r = ramp.ratePerMinute;
  const g = ramp.growthFactor;
  if (g <= 1) return r;
  // Devices the first k minutes hold.
  const filled = (k: number): number => rampAllowance(k * 60_000, ramp);
  let k = Math.max(0, Math.floor(Math.log1p((Math.max(0, notifiedEver) * (g - 1)) / r) / Math.log(g)));
  while (k > 0 && filled(k) > notifiedEver) k--;
  // rampAllowance saturates at MAX_SAFE_INTEGER: no minute beyond that one.
  while (filled(k + 1) <= notifiedEver && filled(k + 1) < Number.MAX_SAFE_INTEGER) k++;
  const rate = r * Math.pow(g, k);
  return Number.isFinite(rate) ? Math.min(rate, Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER;
}

/** What the engine keeps per rollout between two ramp decisions (memory only; see rampBudget). */
export interface RampState {
  /** When the last decision was made (ms since the epoch). */
  at: number;
  /** Notices earned and not sent; at most one of them carries into the next decision (the fraction that keeps the pace exact). */
  credit: number;
  /** Notices this driver sent within the last window, one entry per decision that sent any. */
  recent: readonly { at: number; count: number }[];
}

export interface RampInput {
  /** Now (ms since the epoch). */
  now: number;
  /** Devices told at least once (the ramp's position). */
  notifiedEver: number;
  /** Notices the database shows within the last window (all drivers, retries included). */
  recentNotices: number;
  /**
   * The longest gap between two decisions that still counts as time the ramp was running; a
   * longer one (the rollout was paused, its window closed, the driver changed) earns no more.
   */
  maxGapMs: number;
}

export interface RampDecision {
  /** Devices that may be told now. */
  budget: number;
  /** The rate in force (notices per minute). */
  rate: number;
  /** Carry this into the next decision with `rampAfter`. */
  next: RampState;
}

/**
 * How many devices a ramped rollout may tell now. Two limits, and the budget is the smaller:
 *
 * - the window: the notices of the last RAMP_WINDOW_MS (the larger of what the database shows
 *   and what this driver itself sent, so a notice whose row a retry stamped again still counts)
 *   plus the new ones stay within the rate. That holds in every minute, windows or not;
 * - the pace: notices are earned at the rate, pro rata over the time since the last decision
 *   (at most `maxGapMs` of it), and an unspent remainder carries over only up to one notice. So
 *   nothing builds up while notifications are blocked (window closed, paused, in-flight cap,
 *   nobody pending), and a ramp that opens again starts at its pace instead of in a burst.
 *
 * The first decision (the rollout starts, or a new driver takes over) allows one device at once,
 * so a slow ramp does not look stuck. Pure.
 */
export function rampBudget(ramp: RampSpec, input: RampInput, last: RampState | undefined): RampDecision {
  const rate = rampRate(ramp, input.notifiedEver);
  const recent = (last?.recent ?? []).filter((e) => e.at > input.now - RAMP_WINDOW_MS);
  const own = recent.reduce((n, e) => n + e.count, 0);
  const inWindow = Math.max(input.recentNotices, own);
  const gap = last ? Math.min(Math.max(0, input.now - last.at), input.maxGapMs) : 0;
  const credit = (last ? Math.min(last.credit, 1) : 1) + (rate * gap) / RAMP_WINDOW_MS;
  const budget = Math.max(0, Math.min(Math.floor(credit), Math.floor(rate) - inWindow));
  return { budget, rate, next: { at: input.now, credit, recent } };
}

/** The state after a decision of which `sent` (<= its budget) devices were told. */
export function rampAfter(decision: RampDecision, sent: number): RampState {
  const { at, credit, recent } = decision.next;
  return { at, credit: Math.max(0, credit - sent), recent: sent > 0 ? [...recent, { at, count: sent }] : recent };
}
