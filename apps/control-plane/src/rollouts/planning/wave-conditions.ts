import type { FailureCondition, RolloutAction, RolloutDeviceState } from '../rollout.types.js';
import { successStates } from './device-state.js';

export type StateCounts = Partial<Record<RolloutDeviceState, number>>;

/** The numbers a wave decision is based on; recorded verbatim in rollout events. */
export interface WaveAssessment {
  /** Devices of the wave that take part (skipped ones do not). */
  members: number;
  succeeded: number;
  failed: number;
  /** Devices that reached an end: succeeded or failed. */
  executed: number;
  inFlight: number;
  pending: number;
  successPercent: number;
  /** Failures over executed devices, after subtracting failures an operator accepted on resume. */
  failurePercent: number;
  successMet: boolean;
  failureMet: boolean;
}

const FAILURE_STATES: RolloutDeviceState[] = ['failed', 'timed-out'];

/**
 * Judges a wave from its device counts. Success: at least successPercent of the wave's members
 * succeeded (an empty wave trivially succeeds). Failure: once at least minExecuted devices
 * (beyond the accepted ones) finished, failures reach `percent` of them or `count`.
 * `acceptedFailures` are failures an operator acknowledged by resuming a paused wave: only new
 * failures can trigger the condition again.
 */
export function assessWave(
  counts: StateCounts,
  successPercent: number,
  failure: FailureCondition | undefined,
  action: RolloutAction,
  acceptedFailures = 0,
): WaveAssessment {
  const n = (s: RolloutDeviceState): number => counts[s] ?? 0;
  const members = Object.entries(counts).reduce((sum, [state, c]) => (state === 'skipped' ? sum : sum + (c ?? 0)), 0);
  const succeeded = successStates(action).reduce((sum, s) => sum + n(s), 0);
  const failed = FAILURE_STATES.reduce((sum, s) => sum + n(s), 0);
  const executed = succeeded + failed;
  const inFlight = n('notified') + n('downloading') + n('installing') + (action === 'install' ? n('downloaded') : 0);
  const newFailures = Math.max(0, failed - acceptedFailures);
  const newExecuted = Math.max(0, executed - acceptedFailures);
  const successPct = members === 0 ? 100 : (succeeded * 100) / members;
  const failurePct = newExecuted === 0 ? 0 : (newFailures * 100) / newExecuted;
  let failureMet = false;
  if (failure && newFailures > 0 && newExecuted >= failure.minExecuted) {
    if (failure.percent !== undefined && failurePct >= failure.percent) failureMet = true;
    if (failure.count !== undefined && newFailures >= failure.count) failureMet = true;
  }
  return {
    members,
    succeeded,
    failed,
    executed,
    inFlight,
    pending: n('pending'),
    successPercent: round2(successPct),
    failurePercent: round2(failurePct),
    successMet: members === 0 || succeeded * 100 >= successPercent * members,
    failureMet,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export type WaveDecision =
  | { kind: 'fail'; assessment: WaveAssessment }
  | { kind: 'wait'; reason: string; assessment: WaveAssessment }
  | { kind: 'bake'; assessment: WaveAssessment; bakeEndsAt: Date }
  | { kind: 'advance'; assessment: WaveAssessment };

/**
 * Decides what the current wave allows, given when its success condition was first met (bake
 * time runs from then). Gates are judged separately by the engine, which may still hold an
 * `advance` back.
 */
export function decideWave(assessment: WaveAssessment, bakeSeconds: number, successSince: Date | null, now: Date): WaveDecision {
  if (assessment.failureMet) return { kind: 'fail', assessment };
  if (!assessment.successMet) {
    return { kind: 'wait', reason: `success ${assessment.successPercent}% of ${assessment.members} devices`, assessment };
  }
  const since = successSince ?? now;
  const bakeEndsAt = new Date(since.getTime() + bakeSeconds * 1000);
  if (bakeEndsAt.getTime() > now.getTime()) return { kind: 'bake', assessment, bakeEndsAt };
  return { kind: 'advance', assessment };
}
