import type { UpdateState } from '@fleetline/protocol';

/**
 * The ONE transition table of a model update (in the spirit of Mender's update state machine).
 * Every state change of an update goes through `transition()`; anything not listed here is a bug
 * and throws. The journal is the only writer of update state and applies nothing but these rows
 * (plus opening a new entry only at an end state, and removing one only when no work is in flight),
 * so the reconciler, recovery and the planner cannot bypass the table. docs/state-machine.md draws
 * the same table, and a test compares the two.
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
 *               (idempotent: a crash between abandoning and removing the entry abandons again)
 * - acknowledge the assigned version is already active: the new revision is committed, no bytes move
 * - restart     the agent started and found the update where the new version may already run:
 *               the boot-loop counter goes up (the loop breaker), the state stays
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
  'acknowledge',
  'restart',
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
  { from: 'idle', event: 'acknowledge', to: 'committed' },
  // The deadline passed before the first step ran (e.g. the device was off for longer than the timeout).
  { from: 'idle', event: 'fail', to: 'failed' },
  // Abandoning writes `idle` and then removes the entry; a crash in between leaves `idle` behind.
  { from: 'idle', event: 'abandon', to: 'idle' },

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
  // Installing only writes a new version directory; `current` has not moved, so a newer
  // assignment (e.g. one that arrived while the device was off) may still abandon it.
  { from: 'installing', event: 'abandon', to: 'idle' },

  { from: 'activating', event: 'activated', to: 'health-checking' },
  { from: 'activating', event: 'fail', to: 'rolling-back' },
  { from: 'activating', event: 'restart', to: 'activating' },

  { from: 'health-checking', event: 'healthy', to: 'committed' },
  { from: 'health-checking', event: 'fail', to: 'rolling-back' },
  { from: 'health-checking', event: 'restart', to: 'health-checking' },

  { from: 'rolling-back', event: 'restored', to: 'rolled-back' },
  // Restoring failed too (e.g. the previous version's files are gone): nothing more the agent can do.
  { from: 'rolling-back', event: 'fail', to: 'failed' },
];

const index = new Map<string, UpdateState>(TRANSITION_TABLE.map((r) => [`${r.from}|${r.event}`, r.to]));

/** Journal operations outside the rows: opening a new entry and removing one. */
export type JournalOperation = 'begin' | 'remove';

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: UpdateState,
    readonly event: UpdateEvent | JournalOperation,
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

const statesOf = (keep: (s: UpdateState) => boolean): UpdateState[] => [...new Set(TRANSITION_TABLE.flatMap((r) => [r.from, r.to]))].filter(keep);

/**
 * States in which the device may be running the new version: the ones with a `restart` row. A crash
 * here counts towards the boot-loop limit.
 */
export const ACTIVATION_STATES: readonly UpdateState[] = statesOf((s) => canTransition(s, 'restart'));

/** States with no row out: the update is over, and only a new update may replace its entry. */
export const END_STATES: readonly UpdateState[] = statesOf((s) => !TRANSITION_TABLE.some((r) => r.from === s));

/**
 * States in which the update is still in flight (a restart resumes it): everything but the end
 * states and the download-only park (`downloaded` moves on an install command only).
 */
export const IN_FLIGHT_STATES: readonly UpdateState[] = statesOf((s) => !END_STATES.includes(s) && s !== 'downloaded');

/** A new update may replace the journaled one (`[*] --> idle`) only when that one is over. */
export function canBegin(current: UpdateState | undefined): boolean {
  return current === undefined || END_STATES.includes(current);
}

/** An entry may be removed only when no work is in flight: over, or never started (`idle`). */
export function canRemove(current: UpdateState | undefined): boolean {
  return current === undefined || current === 'idle' || END_STATES.includes(current);
}
