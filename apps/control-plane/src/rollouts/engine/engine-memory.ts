import type { RampState } from '../planning/ramp.js';

/**
 * What the driving replica remembers between ticks. None of it is rollout progress (that is in
 * the database): cadences, de-duplication of notes, the ramp's pace, and devices to publish
 * again. A new driver starts empty and is correct, only slower or chattier for a tick.
 */
export class EngineMemory {
  /** Rollouts whose notified-but-unconfirmed devices are published again on the next tick. */
  readonly republish = new Set<string>();
  /** Notes recorded once per rollout+wave+kind (waiting for approval, stalled, ...), to keep the log about decisions. */
  readonly noted = new Set<string>();
  /** Pace of each ramped rollout since this replica's last notification decision (see rampBudget). */
  readonly ramps = new Map<string, RampState>();
  /** Last gate evaluation per `rolloutId:wave`. */
  readonly gatesEvaluatedAt = new Map<string, number>();
  /** Last look for newly matching devices per dynamic rollout. */
  readonly lastJoin = new Map<string, number>();
  readonly lastSweep = new Map<string, number>();
  readonly lastTimeoutCheck = new Map<string, number>();
  /** Failed revert attempts per rolling-back rollout (for the rollback-retrying event). */
  readonly rollbackRetries = new Map<string, { attempts: number; lastEventAt: number }>();

  /** True (and remembered) when `id`'s last run in `last` is at least `everyMs` ago. */
  due(last: Map<string, number>, id: string, everyMs: number): boolean {
    const now = Date.now();
    if (now - (last.get(id) ?? 0) < everyMs) return false;
    last.set(id, now);
    return true;
  }
}
