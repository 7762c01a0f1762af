import type { UpdateState } from '@fleetline/protocol';

/**
 * The ONE transition table of a model update (in the spirit of Mender's update state machine).
 * Every state change of an update goes through `transition()`; anything not listed here is a bug
 * and throws. docs/state-machine.md draws the same table.
 *
 * Events:
 * - start       an assignment passed the compatibility check; fetching begins
 * - reject      the assignment's constraints do not match this device (nothing attempted)
 * - fetched     all artifact bytes are in the download area
 * - stage       verified, and the assignment is download-only: park in `downloaded`
 * - verified    verified, and the assignment installs
 * - install     an install command promotes a staged (`downloaded`) update; bytes are re-verified first
 * - installed   files are in their version directory, fsynced
 * - activated   the `current` link points at the new version
 * - healthy     the runtime loaded the model and its self-test passed
 * - fail        the step failed (what that leads to depends on whether the device changed yet)
 * - restored    the previous version is active again
 * - abandon     a newer assignment superseded this one before the device changed anything
 */
export const UPDATE_EVENTS = [
  'start',
  'reject',
  'fetched',
  'stage',
  'verified',
  'install',
  'installed',
  'activated',
  'healthy',
  'fail',
  'restored',
  'abandon',
] as const;
export type UpdateEvent = (typeof UPDATE_EVENTS)[number];

export interface TransitionRow {
  from: UpdateState;
  event: UpdateEvent;
  to: UpdateState;
}

// Invariant: before `activating`, the active version has not been touched, so failures end in `failed`
// (nothing to undo) and a superseded update may be abandoned. From `activating` on, the device runs
// (or may run) the new version, so every failure goes through `rolling-back`, and nothing abandons it.
export const TRANSITION_TABLE: readonly TransitionRow[] = [
  { from: 'idle', event: 'start', to: 'downloading' },
  { from: 'idle', event: 'reject', to: 'incompatible' },

  { from: 'downloading', event: 'fetched', to: 'verifying' },
  { from: 'downloading', event: 'fail', to: 'failed' },
  { from: 'downloading', event: 'abandon', to: 'idle' },

  { from: 'verifying', event: 'stage', to: 'downloaded' },
  { from: 'verifying', event: 'verified', to: 'installing' },
  { from: 'verifying', event: 'fail', to: 'failed' },
  { from: 'verifying', event: 'abandon', to: 'idle' },

  { from: 'downloaded', event: 'install', to: 'verifying' },
  { from: 'downloaded', event: 'abandon', to: 'idle' },

  { from: 'installing', event: 'installed', to: 'activating' },
  { from: 'installing', event: 'fail', to: 'failed' },

  { from: 'activating', event: 'activated', to: 'health-checking' },
  { from: 'activating', event: 'fail', to: 'rolling-back' },

  { from: 'health-checking', event: 'healthy', to: 'committed' },
  { from: 'health-checking', event: 'fail', to: 'rolling-back' },

  { from: 'rolling-back', event: 'restored', to: 'rolled-back' },
  // Restoring failed too (e.g. the previous version's files are gone): nothing more the agent can do.
  { from: 'rolling-back', event: 'fail', to: 'failed' },
];

const index = new Map<string, UpdateState>(TRANSITION_TABLE.map((r) => [`${r.from}|${r.event}`, r.to]));

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: UpdateState,
    readonly event: UpdateEvent,
  ) {
    super(`illegal update transition: ${event} in state ${from}`);
  }
}

/** Next state for `event` in `from`, or throws IllegalTransitionError. Pure. */
export function transition(from: UpdateState, event: UpdateEvent): UpdateState {
  const to = index.get(`${from}|${event}`);
  if (to === undefined) throw new IllegalTransitionError(from, event);
  return to;
}

export function canTransition(from: UpdateState, event: UpdateEvent): boolean {
  return index.has(`${from}|${event}`);
}

/** States in which the device may be running the new version: a crash here counts towards the boot-loop limit. */
export const ACTIVATION_STATES: readonly UpdateState[] = ['activating', 'health-checking'];

/** States in which the update is still in flight (a restart resumes it). */
export const IN_FLIGHT_STATES: readonly UpdateState[] = ['idle', 'downloading', 'verifying', 'installing', 'activating', 'health-checking', 'rolling-back'];
