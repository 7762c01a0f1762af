import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { RampSpec } from '../rollout.types.js';
import { RAMP_WINDOW_MS, rampAfter, rampBudget, rampRate, type RampState } from './ramp.js';
import { rampAllowance } from './wave-math.js';

const MAX_GAP_MS = 4_000;

/** What blocks a tick: nothing, the window (no decision at all), the in-flight cap (nothing sent), or a short supply. */
type Mode = 'open' | 'closed' | 'capped' | 'partial';

interface Step {
  dtMs: number;
  mode: Mode;
  /** Devices pending when the mode is `partial`. */
  supply: number;
  /** Notices of the last window the database no longer shows (rows a retry stamped again). */
  undercount: number;
  /** Of the devices sent, how many are retries (they do not move the ramp's position). */
  retries: number;
}

interface Sent {
  at: number;
  count: number;
  rate: number;
}

/** Drives rampBudget like the engine does, tick by tick, and logs every notice with the rate in force. */
function simulate(ramp: RampSpec, steps: readonly Step[], start = 1_700_000_000_000): Sent[] {
  const log: Sent[] = [];
  let now = start;
  let state: RampState | undefined;
  let notifiedEver = 0;
  for (const step of steps) {
    now += step.dtMs;
    if (step.mode === 'closed') continue; // the engine returns before the ramp while the window is closed
    const inDb = log.filter((s) => s.at > now - RAMP_WINDOW_MS).reduce((n, s) => n + s.count, 0);
    const decision = rampBudget(ramp, { now, notifiedEver, recentNotices: Math.max(0, inDb - step.undercount), maxGapMs: MAX_GAP_MS }, state);
    expect(decision.budget).toBeGreaterThanOrEqual(0);
    // The engine tells at most MAX_NOTIFY_PER_TICK (20,000) devices per tick.
    const sent = step.mode === 'capped' ? 0 : Math.min(decision.budget, step.mode === 'partial' ? step.supply : 20_000);
    if (sent > 0) log.push({ at: now, count: sent, rate: decision.rate });
    notifiedEver += sent - Math.min(sent, step.retries);
    state = rampAfter(decision, sent);
  }
  return log;
}

/** Notices in the window of `lengthMs` ending at `end` (inclusive), i.e. (end - lengthMs, end]. */
function inWindow(log: readonly Sent[], end: number, lengthMs: number): number {
  return log.filter((s) => s.at > end - lengthMs && s.at <= end).reduce((n, s) => n + s.count, 0);
}

const step: fc.Arbitrary<Step> = fc.record({
  dtMs: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 1, max: 3_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 3_000, max: 3_600_000 }) }),
  mode: fc.constantFrom<Mode>('open', 'open', 'open', 'capped', 'partial', 'closed'),
  supply: fc.nat(50),
  undercount: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(5) }),
  retries: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(3) }),
});
const ramp: fc.Arbitrary<RampSpec> = fc.record({
  ratePerMinute: fc.oneof(fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 100_000 })),
  growthFactor: fc.oneof(fc.constant(1), fc.double({ min: 1, max: 10, noNaN: true })),
});

describe('ramp budget', () => {
  it('property: in any 60 s window no more notices than the ramp allows, whatever blocks it and for how long', () => {
    fc.assert(
      fc.property(ramp, fc.array(step, { minLength: 1, maxLength: 300 }), (r, steps) => {
        const log = simulate(r, steps);
        // The rate only grows, so the busiest window ending at a notice is the one to check.
        for (const s of log) expect(inWindow(log, s.at, RAMP_WINDOW_MS)).toBeLessThanOrEqual(Math.floor(s.rate));
        if (r.growthFactor === 1) for (const s of log) expect(inWindow(log, s.at, RAMP_WINDOW_MS)).toBeLessThanOrEqual(r.ratePerMinute);
      }),
      { numRuns: 300 },
    );
  });

  it('property: the allowance does not build up while blocked; any stretch gets its pro rata share plus one', () => {
    fc.assert(
      fc.property(ramp, fc.array(step, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: RAMP_WINDOW_MS }), (r, steps, lengthMs) => {
        const log = simulate(r, steps);
        for (const s of log) {
          // Earned over the stretch plus at most one gap before it, and one notice carried over.
          const bound = 1 + (s.rate * (lengthMs + MAX_GAP_MS)) / RAMP_WINDOW_MS;
          expect(inWindow(log, s.at, lengthMs)).toBeLessThanOrEqual(Math.floor(bound + 1e-9));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('regression: a window that opens after ten closed minutes does not release a burst (30/min, 50 devices waiting)', () => {
    const r = { ratePerMinute: 30, growthFactor: 1 };
    const tick = (mode: Mode, dtMs = 2_000): Step => ({ dtMs, mode, supply: 50, undercount: 0, retries: 0 });
    // Started just before the window closed: one device went, then ten minutes closed, then open.
    const steps = [tick('open', 0), ...Array.from({ length: 300 }, () => tick('closed')), ...Array.from({ length: 120 }, () => tick('partial'))];
    const log = simulate(r, steps);
    const opened = log[0]!.at + 600_000;
    const after = log.filter((s) => s.at > opened);
    expect(after[0]!.count).toBeLessThanOrEqual(2);
    expect(inWindow(log, opened + 60_000, 60_000)).toBeLessThanOrEqual(30);
    expect(inWindow(log, opened + 60_000, 60_000)).toBeGreaterThanOrEqual(28); // and it does ramp: about 1 per 2 s
    expect(Math.max(...after.map((s) => s.count))).toBeLessThanOrEqual(2);
  });

  it('follows the exponential schedule while nothing holds it back', () => {
    const r = { ratePerMinute: 10, growthFactor: 2 };
    const steps: Step[] = Array.from({ length: 300 }, () => ({ dtMs: 1_000, mode: 'open', supply: 0, undercount: 0, retries: 0 }));
    const log = simulate(r, steps, 0);
    let total = 0;
    for (const s of log) {
      total += s.count;
      // Never ahead of the schedule by more than the device told at the start (as before: one
      // notice interval of the first minute), and at most a few seconds behind it.
      expect(total).toBeLessThanOrEqual(rampAllowance(s.at + 60_000 / r.ratePerMinute, r));
      expect(total).toBeGreaterThanOrEqual(rampAllowance(s.at - 5_000, r) - 1);
    }
    expect(total).toBeGreaterThan(rampAllowance(4 * 60_000, r));
  });

  it('grows the rate with the minutes it filled, not with the clock', () => {
    const r = { ratePerMinute: 10, growthFactor: 2 };
    expect([0, 9, 10, 29, 30, 69, 70].map((n) => rampRate(r, n))).toEqual([10, 10, 20, 20, 40, 40, 80]);
    expect(rampRate({ ratePerMinute: 30, growthFactor: 1 }, 1_000_000)).toBe(30);
    expect(rampRate({ ratePerMinute: 1_000_000, growthFactor: 10 }, Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    // Paused for an hour at 25 devices: still minute 1 (20/min) when it resumes, not minute 61.
    const decision = rampBudget(r, { now: 3_600_000, notifiedEver: 25, recentNotices: 0, maxGapMs: MAX_GAP_MS }, { at: 0, credit: 0.5, recent: [] });
    expect(decision.rate).toBe(20);
    expect(decision.budget).toBe(1); // 0.5 carried + 20/min over at most 4 s
  });

  it('allows one device at the first decision, then keeps to the window', () => {
    const r = { ratePerMinute: 5, growthFactor: 1 };
    expect(rampBudget(r, { now: 0, notifiedEver: 0, recentNotices: 0, maxGapMs: MAX_GAP_MS }, undefined).budget).toBe(1);
    // A new driver that finds the minute used up by its predecessor sends nothing.
    expect(rampBudget(r, { now: 0, notifiedEver: 40, recentNotices: 5, maxGapMs: MAX_GAP_MS }, undefined).budget).toBe(0);
    // Its own notices count even when the database shows fewer.
    const state: RampState = { at: 0, credit: 1, recent: [{ at: -10_000, count: 5 }] };
    expect(rampBudget(r, { now: 4_000, notifiedEver: 40, recentNotices: 2, maxGapMs: MAX_GAP_MS }, state).budget).toBe(0);
    expect(rampBudget(r, { now: 50_001, notifiedEver: 40, recentNotices: 0, maxGapMs: MAX_GAP_MS }, { ...state, at: 50_000 }).budget).toBe(1);
  });
});
