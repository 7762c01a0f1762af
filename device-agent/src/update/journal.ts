import type { DesiredModel, FailureCode, UpdateState } from '@fleetline/protocol';
import { isTerminalUpdateState } from '@fleetline/protocol';
import type { StateStore } from '../storage/store.js';
import { ACTIVATION_STATES, transition, type UpdateEvent } from './transition-table.js';

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

  async begin(desired: DesiredModel, previousVersion: string | null, priorPrevious: string | null, now: Date, defaultTimeoutMs: number): Promise<JournalEntry> {
    const timeoutMs = desired.timeoutSeconds ? desired.timeoutSeconds * 1000 : defaultTimeoutMs;
    const entry: JournalEntry = {
      model: desired.model,
      desired,
      state: 'idle',
      previousVersion,
      priorPrevious,
      restarts: 0,
      startedAt: now.toISOString(),
      updatedAt: now.toISOString(),
      deadline: new Date(now.getTime() + timeoutMs).toISOString(),
    };
    await this.store.write(this.key(desired.model), entry);
    return entry;
  }

  /** Applies one event through the transition table and persists the result before returning it. */
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

  async save(entry: JournalEntry): Promise<void> {
    await this.store.write(this.key(entry.model), entry);
  }

  async remove(model: string): Promise<void> {
    await this.store.delete(this.key(model));
  }
}

export type RecoveryDecision =
  | { kind: 'none' }
  | { kind: 'resume'; state: UpdateState; restarts: number }
  | { kind: 'fail'; code: FailureCode; message: string }
  | { kind: 'roll-back'; code: FailureCode; message: string; restarts: number };

export const DEFAULT_MAX_ACTIVATION_RESTARTS = 3;

/**
 * What to do with a journal entry found at agent start. Pure.
 * - Terminal states (committed, rolled-back, failed, incompatible, downloaded): nothing.
 * - Activation states: the previous run may have crashed BECAUSE of the new version (e.g. the
 *   runtime aborting while loading it). Each start there counts; at `maxRestarts` the update is
 *   rolled back with `boot-loop` instead of being retried forever.
 * - Pre-activation states past their deadline: fail with download-timeout (nothing to undo).
 * - Everything else resumes at the journaled state (steps are idempotent).
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
  if (entry.deadline && ['idle', 'downloading', 'verifying'].includes(entry.state) && now.getTime() > Date.parse(entry.deadline)) {
    return { kind: 'fail', code: 'download-timeout', message: `update deadline ${entry.deadline} passed` };
  }
  return { kind: 'resume', state: entry.state, restarts: entry.restarts };
}
