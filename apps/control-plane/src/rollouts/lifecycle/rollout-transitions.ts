import type { RolloutState } from '../rollout.types.js';

/**
 * The one transition table of a rollout's lifecycle. Every state change, by an operator through
 * the API or by the engine, names one of these operations; the repository's compare-and-set
 * takes its `from` states and allowed targets from here, so no code path can move a rollout
 * along an edge this table does not have (the way Mender's client drives an update from one
 * table). The state diagram in ../README.md is generated from it (rolloutStateDiagram) and a
 * unit test keeps the two equal.
 */
export type RolloutOperation =
  // operator (REST API, fleetctl)
  | 'pause'
  | 'resume'
  | 'advance'
  | 'cancel'
  | 'abort'
  | 'retry'
  | 'install'
  // engine
  | 'prepared'
  | 'prepare-failed'
  | 'start'
  | 'next-wave'
  | 'complete'
  | 'end-time'
  | 'halt'
  | 'roll-back'
  | 'nothing-left'
  | 'finish-rollback';

export interface RolloutTransition {
  readonly by: 'operator' | 'engine';
  readonly from: readonly RolloutState[];
  /** Allowed targets; an operation that keeps the state (retry, install) lists none. */
  readonly to: readonly RolloutState[];
}

const ACTIVE = ['scheduled', 'running', 'paused'] as const satisfies readonly RolloutState[];

export const ROLLOUT_TRANSITIONS: { readonly [op in RolloutOperation]: RolloutTransition } = {
  pause: { by: 'operator', from: ['scheduled', 'running'], to: ['paused'] },
  resume: { by: 'operator', from: ['paused'], to: ['scheduled', 'running'] },
  advance: { by: 'operator', from: ACTIVE, to: ['running'] },
  // A preparing rollout holds no device yet: cancelling it just drops the staged id list.
  cancel: { by: 'operator', from: ['preparing', ...ACTIVE], to: ['cancelled'] },
  abort: { by: 'operator', from: ACTIVE, to: ['rolling-back'] },
  retry: { by: 'operator', from: ACTIVE, to: [] },
  install: { by: 'operator', from: ['running', 'paused'], to: [] },
  // Membership materialised; the same tick starts it when its start time is reached.
  prepared: { by: 'engine', from: ['preparing'], to: ['scheduled'] },
  // Preparation found what an inline creation answers with 409 (conflict) or 404 (version gone).
  'prepare-failed': { by: 'engine', from: ['preparing'], to: ['cancelled'] },
  start: { by: 'engine', from: ['scheduled'], to: ['running'] },
  'next-wave': { by: 'engine', from: ['running'], to: ['running'] },
  complete: { by: 'engine', from: ['running'], to: ['completed'] },
  'end-time': { by: 'engine', from: ['running'], to: ['completed'] },
  halt: { by: 'engine', from: ['running'], to: ['paused'] },
  'roll-back': { by: 'engine', from: ['running'], to: ['rolling-back'] },
  'nothing-left': { by: 'engine', from: ACTIVE, to: ['cancelled'] },
  'finish-rollback': { by: 'engine', from: ['rolling-back'], to: ['rolled-back', 'aborted'] },
};

/** States the engine keeps telling devices in: the rollout may still start waves or notify. */
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ACTIVE;
/** States in which a rollout holds its devices (no other rollout of the model may take them). */
export const HOLDING_ROLLOUT_STATES: readonly RolloutState[] = [...ACTIVE, 'rolling-back'];

/** The states a rollout is created in: `preparing` when the engine materialises its membership later. */
export const INITIAL_ROLLOUT_STATES: readonly RolloutState[] = ['preparing', 'scheduled'];

export function transitionOf(op: RolloutOperation): RolloutTransition {
  return ROLLOUT_TRANSITIONS[op];
}

/** True when `op` may run on a rollout in `state`. */
export function allows(op: RolloutOperation, state: RolloutState): boolean {
  return ROLLOUT_TRANSITIONS[op].from.includes(state);
}

/**
 * The state `op` leads to: `to` when given and allowed, the single target otherwise. Throws on a
 * target the table does not have, which is a programming error rather than a race.
 */
export function targetOf(op: RolloutOperation, to?: RolloutState): RolloutState {
  const t = ROLLOUT_TRANSITIONS[op];
  const target = to ?? (t.to.length === 1 ? t.to[0] : undefined);
  if (target === undefined || !t.to.includes(target)) {
    throw new Error(`rollout operation ${op} cannot lead to ${to ?? '(unspecified)'}; allowed: ${t.to.join(', ') || 'none'}`);
  }
  return target;
}

/** SQL list literal of states (they are this module's constants, never input). */
export function sqlStates(states: readonly RolloutState[]): string {
  return `(${states.map((s) => `'${s}'`).join(', ')})`;
}

/** A Mermaid state diagram of the table, as embedded in rollouts/README.md. */
export function rolloutStateDiagram(): string {
  const lines = ['stateDiagram-v2', '    [*] --> preparing: create (large id list)', '    [*] --> scheduled: create'];
  for (const [op, t] of Object.entries(ROLLOUT_TRANSITIONS) as [RolloutOperation, RolloutTransition][]) {
    // Operations that keep the state (retry, install, next-wave) are not edges of the diagram.
    for (const from of t.from) for (const to of t.to) if (to !== from) lines.push(`    ${mermaidId(from)} --> ${mermaidId(to)}: ${op} (${t.by})`);
  }
  for (const end of ['completed', 'cancelled', 'aborted', 'rolled-back'] as const) lines.push(`    ${mermaidId(end)} --> [*]`);
  return lines.join('\n');
}

function mermaidId(state: RolloutState): string {
  return state.replace('-', '_');
}
