import type { DesiredModel, UpdateState } from '@fleetline/protocol';
import { isTerminalUpdateState } from '@fleetline/protocol';
import { canBegin, canRemove, canTransition, transition, type UpdateEvent } from '../update/transition-table.js';

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
  // A shadow candidate is staged like a download-only one: it runs beside the active version, never instead of it.
  const verifyThen: 'stage' | 'install' = action !== 'install' && !installRequested ? 'stage' : 'install';
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
 * 6. A download-only or shadow assignment ends in `downloaded`; only an install command continues it.
 * 7. Every plan is a legal path through the transition table from the journaled state
 *    (`stepTransitions` says which rows each step takes; a property test walks every plan).
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
    // Journaled but not started: the version may already be active (an acknowledgement cut short).
    if (u.state === 'idle' && desired.version === current.activeVersion) return [{ kind: 'acknowledge' }]; // invariant 5
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

/**
 * How one step moves the journal through the transition table: whether it opens a new entry
 * (`[*] --> idle`), the events it applies before its work (the journal names the state whose work
 * runs, before that work starts), the event that ends it on success, the event its failure applies,
 * and whether it removes the entry at the end. Pure; the executor follows it, so what the table
 * allows and what the code does cannot drift apart.
 */
export interface StepTransitions {
  begin: boolean;
  enter: UpdateEvent[];
  exit?: UpdateEvent;
  onFailure?: UpdateEvent;
  removes: boolean;
}

export class IllegalStepError extends Error {
  constructor(
    readonly step: StepKind,
    readonly state: UpdateState | undefined,
  ) {
    super(`step ${step} cannot run with the update journaled in ${state ?? 'no entry'}`);
  }
}

/**
 * Transitions of `step` when the journal holds `state` (undefined: no entry); `forDesired` says
 * whether that entry belongs to the assignment the step works for. Throws IllegalStepError when
 * the table does not allow the step there.
 */
export function stepTransitions(step: Step, state: UpdateState | undefined, forDesired: boolean): StepTransitions {
  const t = ((): StepTransitions => {
    const none = { begin: false, enter: [] as UpdateEvent[], removes: false };
    switch (step.kind) {
      case 'abandon':
        return { ...none, enter: ['abandon'], removes: true };
      case 'check-compatibility':
        return { ...none, begin: !(state === 'idle' && forDesired), onFailure: 'reject' };
      case 'acknowledge':
        return { ...none, begin: !(state === 'idle' && forDesired), exit: 'acknowledge' };
      case 'download':
        return { ...none, enter: state === 'idle' ? ['start'] : [], exit: 'fetched', onFailure: 'fail' };
      case 'verify':
        return {
          ...none,
          enter: state === 'downloading' ? ['fetched'] : state === 'downloaded' ? ['install'] : [],
          exit: step.then === 'stage' ? 'stage' : 'verified',
          onFailure: 'fail',
        };
      case 'install':
        return { ...none, exit: 'installed', onFailure: 'fail' };
      case 'activate':
        return { ...none, exit: 'activated', onFailure: 'fail' };
      case 'health-check':
        return { ...none, onFailure: 'fail' };
      case 'commit':
        return { ...none, exit: 'healthy' };
      case 'roll-back':
        return { ...none, exit: 'restored', onFailure: 'fail' };
      case 'remove-model':
        return { ...none, removes: true };
    }
  })();
  // Check the whole step against the table before any of it runs.
  let s = state;
  if (t.begin) {
    if (!canBegin(s)) throw new IllegalStepError(step.kind, state);
    s = 'idle';
  }
  if (t.enter.length > 0 || t.exit !== undefined || t.onFailure !== undefined) {
    if (s === undefined) throw new IllegalStepError(step.kind, state);
    let at: UpdateState = s;
    for (const event of t.enter) {
      if (!canTransition(at, event)) throw new IllegalStepError(step.kind, state);
      at = transition(at, event);
    }
    if (t.onFailure !== undefined && !canTransition(at, t.onFailure)) throw new IllegalStepError(step.kind, state);
    if (t.exit !== undefined) {
      if (!canTransition(at, t.exit)) throw new IllegalStepError(step.kind, state);
      at = transition(at, t.exit);
    }
    s = at;
  }
  if (t.removes && !canRemove(s)) throw new IllegalStepError(step.kind, state);
  return t;
}
