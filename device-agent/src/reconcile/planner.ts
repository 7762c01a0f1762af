import type { DesiredModel, UpdateState } from '@fleetline/protocol';
import { isTerminalUpdateState } from '@fleetline/protocol';

/** Summary of the journaled update for one model, as the planner needs it. */
export interface UpdateSummary {
  version: string;
  revision: number;
  state: UpdateState;
  installRequested?: boolean;
}

/** What is installed for one model plus the update in progress (if any). */
export interface CurrentModelState {
  activeVersion: string | null;
  previousVersion: string | null;
  update?: UpdateSummary;
}

/**
 * Typed steps the executor runs in order (balena-supervisor style: plan, then apply). Each step
 * maps to exactly one state of the transition table, so a plan is also a path through it.
 */
export type Step =
  | { kind: 'abandon'; version: string; revision: number }
  | { kind: 'check-compatibility' }
  | { kind: 'download' }
  | { kind: 'verify'; then: 'stage' | 'install' }
  | { kind: 'install' }
  | { kind: 'activate' }
  | { kind: 'health-check' }
  | { kind: 'commit' }
  | { kind: 'roll-back' }
  /** The desired version is already active: acknowledge the (new) revision as committed, move no bytes. */
  | { kind: 'acknowledge' }
  /** The model is no longer assigned: unload it and remove its files. */
  | { kind: 'remove-model' };

export type StepKind = Step['kind'];

const TAIL_INSTALL: Step[] = [{ kind: 'install' }, { kind: 'activate' }, { kind: 'health-check' }, { kind: 'commit' }];

/** Steps that finish an update journaled in `state`, for an assignment with `action`. */
export function resumeSteps(state: UpdateState, action: DesiredModel['action'], installRequested = false): Step[] {
  const verifyThen: 'stage' | 'install' = action === 'download-only' && !installRequested ? 'stage' : 'install';
  const afterVerify: Step[] = verifyThen === 'stage' ? [] : TAIL_INSTALL;
  switch (state) {
    case 'idle':
      return [{ kind: 'check-compatibility' }, { kind: 'download' }, { kind: 'verify', then: verifyThen }, ...afterVerify];
    case 'downloading':
      return [{ kind: 'download' }, { kind: 'verify', then: verifyThen }, ...afterVerify];
    case 'verifying':
      return [{ kind: 'verify', then: verifyThen }, ...afterVerify];
    case 'downloaded':
      return installRequested ? [{ kind: 'verify', then: 'install' }, ...TAIL_INSTALL] : [];
    case 'installing':
      return TAIL_INSTALL;
    case 'activating':
      return [{ kind: 'activate' }, { kind: 'health-check' }, { kind: 'commit' }];
    case 'health-checking':
      return [{ kind: 'health-check' }, { kind: 'commit' }];
    case 'rolling-back':
      return [{ kind: 'roll-back' }];
    default:
      return [];
  }
}

/** True once the device may be running the update's version: such an update is never abandoned. */
function pastPointOfNoReturn(state: UpdateState): boolean {
  return state === 'activating' || state === 'health-checking' || state === 'rolling-back';
}

function isInFlight(u: UpdateSummary): boolean {
  return !isTerminalUpdateState(u.state);
}

/**
 * Plans the steps that move one model from `current` towards `desired` (null = unassigned). Pure.
 *
 * Invariants:
 * 1. The active version is never touched before the new version is downloaded AND verified:
 *    `install`/`activate` only ever follow a `verify` of the same assignment (or resume after one).
 * 2. An update at or past `activating` is always finished (commit or roll back) before anything
 *    else happens for that model, even if the assignment changed meanwhile; the next plan handles
 *    the new assignment.
 * 3. An unfinished update before `activating` (or parked in `downloaded`) for a different
 *    assignment is abandoned first; partial downloads are keyed by content hash, so a re-assignment
 *    of the same bytes still resumes them.
 * 4. A terminal update for the same revision plans nothing: a failed revision is not retried
 *    until the server issues a new revision (no retry storms from the device side).
 * 5. If the desired version is already active, no bytes move: the revision is acknowledged.
 * 6. A download-only assignment ends in `downloaded`; only an install command continues it.
 */
export function planSteps(desired: DesiredModel | null, current: CurrentModelState): Step[] {
  const u = current.update;
  if (u && isInFlight(u) && pastPointOfNoReturn(u.state)) {
    // Invariant 2. The action is irrelevant past verification.
    return resumeSteps(u.state, 'install');
  }

  const sameAssignment = desired !== null && u !== undefined && u.version === desired.version && u.revision === desired.revision;
  if (sameAssignment) {
    if (u.state === 'downloaded') return resumeSteps('downloaded', desired.action, u.installRequested);
    if (isInFlight(u)) return resumeSteps(u.state, desired.action, u.installRequested);
    return []; // invariant 4
  }

  const steps: Step[] = [];
  if (u && (isInFlight(u) || u.state === 'downloaded')) steps.push({ kind: 'abandon', version: u.version, revision: u.revision });

  if (desired === null) {
    if (current.activeVersion !== null || current.previousVersion !== null) steps.push({ kind: 'remove-model' });
    return steps;
  }
  if (desired.version === current.activeVersion) {
    steps.push({ kind: 'acknowledge' });
    return steps;
  }
  steps.push(...resumeSteps('idle', desired.action));
  return steps;
}
