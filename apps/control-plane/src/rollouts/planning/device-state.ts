import { type FailureCode, REPORT_STATES, type ReportState, TRANSIENT_FAILURE_CODES } from '@fleetline/protocol';
import type { RolloutAction, RolloutDeviceState } from '../rollout.types.js';

/**
 * How a device's protocol UpdateState (its latest report for the rollout's revision) maps onto
 * the rollout's per-device state. A device-side rollback (health check failed, previous version
 * running again) is a failure of this rollout; `rolled-back` in a rollout is reserved for
 * devices the rollout itself reverted (abort). `incompatible` means the agent refused before
 * doing anything: the device is skipped, like devices the control plane found incompatible.
 * `removed` answers an unassignment, whose revision no rollout row records; should one match
 * anyway, nothing of the model runs on the device and it does nothing more for that revision.
 */
export function deviceStateForReport(state: ReportState): RolloutDeviceState {
  switch (state) {
    case 'idle':
      return 'notified';
    case 'downloading':
    case 'verifying':
      return 'downloading';
    case 'downloaded':
      return 'downloaded';
    case 'installing':
    case 'activating':
    case 'health-checking':
    case 'rolling-back':
      return 'installing';
    case 'committed':
      return 'committed';
    case 'rolled-back':
    case 'failed':
      return 'failed';
    case 'incompatible':
    case 'removed':
      return 'skipped';
  }
}

/** The whole mapping as parallel arrays, for `unnest($1::text[], $2::text[])` in the sync SQL. */
export function reportStateMapping(): { protocol: string[]; device: string[] } {
  return { protocol: [...REPORT_STATES], device: REPORT_STATES.map((s) => deviceStateForReport(s)) };
}

export function isTransientFailure(code: string | null | undefined): boolean {
  return code !== null && code !== undefined && TRANSIENT_FAILURE_CODES.includes(code as FailureCode);
}

/** States that count as success for the rollout's action (a download-only rollout succeeds at "downloaded"). */
export function successStates(action: RolloutAction): RolloutDeviceState[] {
  return action === 'download-only' ? ['downloaded', 'committed'] : ['committed'];
}

/** Delay before retry number `attempt` (1-based): backoffSeconds, doubled for each further attempt, capped at one day. */
export function retryDelaySeconds(attempt: number, backoffSeconds: number): number {
  return Math.min(backoffSeconds * Math.pow(2, Math.max(0, attempt - 1)), 86_400);
}
