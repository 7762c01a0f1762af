/**
 * States of one model update on a device. The device agent's transition table
 * (device-agent/src/update/transition-table.ts) is the authority on which moves are legal;
 * this list is what goes on the wire.
 */
export const UPDATE_STATES = [
  'idle',
  'downloading',
  'downloaded', // download-only assignment: verified and staged, waiting for an install command
  'verifying',
  'installing',
  'activating',
  'health-checking',
  'committed',
  'rolling-back',
  'rolled-back', // health check failed; the previous version runs again
  'failed', // could not even start (download/verification failed); the previous version still runs
  'incompatible', // the assignment's constraints do not match this device; nothing was attempted
] as const;
export type UpdateState = (typeof UPDATE_STATES)[number];

/**
 * What a report's `state` may say: every update state, plus `removed`, which is not a state of an
 * update but the answer to an unassignment (`cleared`): the agent removed the model, so nothing of it
 * runs any more. A `removed` report carries the unassignment's revision, names the version it removed
 * and has `activeVersion` and `previousVersion` null (`updateReportSchema` refuses anything else).
 * The agent sends it once the files are gone and repeats it on every connection like any latest report.
 */
export const REPORT_STATES = [...UPDATE_STATES, 'removed'] as const;
export type ReportState = (typeof REPORT_STATES)[number];

/** States after which the device does nothing more for this assignment until told otherwise. */
export const TERMINAL_UPDATE_STATES: readonly UpdateState[] = ['committed', 'rolled-back', 'failed', 'incompatible', 'downloaded'];

/** True for the end of an update; `removed` is the end of an unassignment, not of an update. */
export function isTerminalUpdateState(state: ReportState): boolean {
  return (TERMINAL_UPDATE_STATES as readonly string[]).includes(state);
}

/** Why an update ended badly; lets the rollout engine tell transient faults (retry) from permanent ones. */
export const FAILURE_CODES = [
  'download-failed',
  'download-timeout',
  'verification-failed',
  'insufficient-disk',
  'install-failed',
  'health-check-failed',
  'health-check-timeout',
  'incompatible-hardware',
  'incompatible-runtime',
  'incompatible-agent',
  'boot-loop',
  // The desired state points at a signed target that is not a file of the assigned model version
  // (see isTargetOfModelVersion): refused before any byte is fetched. Not transient.
  'target-mismatch',
  'internal',
] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** Failures worth retrying automatically: the same bytes may well succeed a minute later. */
export const TRANSIENT_FAILURE_CODES: readonly FailureCode[] = ['download-failed', 'download-timeout', 'insufficient-disk', 'internal'];
