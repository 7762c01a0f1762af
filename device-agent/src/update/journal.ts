import type { DesiredModel, FailureCode, UpdateState } from '@fleetline/protocol';
import { isTerminalUpdateState } from '@fleetline/protocol';
import type { StateStore } from '../storage/store.js';
import { ACTIVATION_STATES, canBegin, canRemove, canTransition, IllegalTransitionError, transition, type UpdateEvent } from './transition-table.js';

/** Durable record of one model's current (or last) update. One per model. */
export interface JournalEntry {
  model: string;
  desired: DesiredModel;
  state: UpdateState;
  /** Version that was active when the update started: the rollback target (null on first install). */
  previousVersion: string | null;
  /** The last-known-good pointer when the update started; restored on rollback. */
  priorPrevious: string | null;
  /** Agent starts that found this update in an activation state (boot-loop counter). */
  restarts: number;
  failure?: { code: FailureCode; message: string };
  /** An install command arrived for this (download-only) assignment. */
  installRequested?: boolean;
  startedAt: string;
  updatedAt: string;
  /** ISO time after which a pre-activation update gives up (from desired.timeoutSeconds). */
  deadline?: string;
}

/**
 * Update journal. The state is written durably BEFORE the step of that state runs, so after a
 * crash the journal names the step that may have been cut short, and every step is written to be
 * idempotent (redoing it is always safe).
 */
export class UpdateJournal {
  constructor(private readonly store: StateStore) {}

  private key(model: string): string {
    return `journal/${model}`;
  }

  async load(model: string): Promise<JournalEntry | undefined> {
    return this.store.read<JournalEntry>(this.key(model));
  }

  async all(): Promise<JournalEntry[]> {
    const keys = await this.store.list('journal');
    const entries = await Promise.all(keys.map((k) => this.store.read<JournalEntry>(k)));
    return entries.filter((e): e is JournalEntry => e !== undefined);
  }

  /**
   * Opens the entry of a new update in `idle` (`[*] --> idle`). Only allowed when the journaled
   * update, if any, is over (an end state); anything still in flight must be finished or abandoned
   * through the table first. `timeoutMs` null: no deadline (nothing will be downloaded).
   */
  async begin(desired: DesiredModel, previousVersion: string | null, priorPrevious: string | null, now: Date, timeoutMs: number | null): Promise<JournalEntry> {
    const existing = await this.load(desired.model);
    if (!canBegin(existing?.state)) throw new IllegalTransitionError(existing!.state, 'begin');
    const entry: JournalEntry = {
      model: desired.model,
      desired,
      state: 'idle',
      previousVersion,
      priorPrevious,
      restarts: 0,
      startedAt: now.toISOString(),
      updatedAt: now.toISOString(),
      ...(timeoutMs !== null ? { deadline: new Date(now.getTime() + timeoutMs).toISOString() } : {}),
    };
    await this.store.write(this.key(desired.model), entry);
    return entry;
  }

  /**
   * Applies one event through the transition table and persists the result before returning it.
   * This is the only way an entry's state changes.
   */
  async apply(
    entry: JournalEntry,
    event: UpdateEvent,
    now: Date,
    patch: Partial<Pick<JournalEntry, 'failure' | 'installRequested' | 'restarts'>> = {},
  ): Promise<JournalEntry> {
    const next: JournalEntry = { ...entry, ...patch, state: transition(entry.state, event), updatedAt: now.toISOString() };
    await this.store.write(this.key(entry.model), next);
    return next;
  }

  /** Drops the entry of a model; refused while its update has work in flight. */
  async remove(model: string): Promise<void> {
    const existing = await this.load(model);
    if (!canRemove(existing?.state)) throw new IllegalTransitionError(existing!.state, 'remove');
    await this.store.delete(this.key(model));
  }
}

export type RecoveryDecision =
  | { kind: 'none' }
  | { kind: 'resume'; state: UpdateState; restarts: number }
  | { kind: 'fail'; code: FailureCode; message: string }
  | { kind: 'roll-back'; code: FailureCode; message: string; restarts: number };

export const DEFAULT_MAX_ACTIVATION_RESTARTS = 3;

/** States whose work is bounded by the update's deadline: nothing has been installed yet. */
const PRE_ACTIVATION_STATES: readonly UpdateState[] = ['idle', 'downloading', 'verifying'];

/**
 * What to do with a journal entry found at agent start. Pure.
 * - Terminal states (committed, rolled-back, failed, incompatible, downloaded): nothing.
 * - Activation states: the previous run may have crashed BECAUSE of the new version (e.g. the
 *   runtime aborting while loading it). Each start there counts; at `maxRestarts` the update is
 *   rolled back with `boot-loop` instead of being retried forever.
 * - Pre-activation states past their deadline: fail with download-timeout (nothing to undo). Not
 *   once an install command promoted a staged download: the download finished long ago.
 * - Everything else resumes at the journaled state (steps are idempotent).
 * Every decision that changes the entry is one row of the transition table (`recoveryTransition`).
 */
export function decideRecovery(entry: JournalEntry, now: Date, maxRestarts = DEFAULT_MAX_ACTIVATION_RESTARTS): RecoveryDecision {
  if (isTerminalUpdateState(entry.state)) return { kind: 'none' };
  if (ACTIVATION_STATES.includes(entry.state)) {
    const restarts = entry.restarts + 1;
    if (restarts >= maxRestarts) {
      return { kind: 'roll-back', code: 'boot-loop', message: `agent restarted ${restarts} times in ${entry.state}`, restarts };
    }
    return { kind: 'resume', state: entry.state, restarts };
  }
  const pastDeadline = entry.deadline !== undefined && now.getTime() > Date.parse(entry.deadline);
  if (pastDeadline && PRE_ACTIVATION_STATES.includes(entry.state) && !entry.installRequested && canTransition(entry.state, 'fail')) {
    return { kind: 'fail', code: 'download-timeout', message: `update deadline ${entry.deadline} passed` };
  }
  return { kind: 'resume', state: entry.state, restarts: entry.restarts };
}

/** The one table event (with its journal patch) that carries out a recovery decision, if any. Pure. */
export function recoveryTransition(
  entry: JournalEntry,
  decision: RecoveryDecision,
): { event: UpdateEvent; patch: Partial<Pick<JournalEntry, 'failure' | 'restarts'>> } | undefined {
  switch (decision.kind) {
    case 'none':
      return undefined;
    case 'resume':
      return decision.restarts !== entry.restarts ? { event: 'restart', patch: { restarts: decision.restarts } } : undefined;
    case 'roll-back':
      return { event: 'fail', patch: { restarts: decision.restarts, failure: { code: decision.code, message: decision.message } } };
    case 'fail':
      return { event: 'fail', patch: { failure: { code: decision.code, message: decision.message } } };
  }
}
