import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import {
  type DesiredModel,
  type DeviceCapabilities,
  type FailureCode,
  selectVariant,
  type StoredReport,
  storedReportMatches,
  type UpdateReport,
  type UpdateState,
} from '@fleetline/protocol';
import { checkTargetBinding } from './target-binding.js';
import type { ArtifactDownloader } from '../download/downloader.js';
import { artifactFileName } from '../download/downloader.js';
import type { ModelStore, StagedFile } from '../install/model-store.js';
import type { RuntimeRegistry } from '../runtime/model-runtime.js';
import type { StateStore } from '../storage/store.js';
import { decideRecovery, recoveryTransition, UpdateJournal, type JournalEntry, DEFAULT_MAX_ACTIVATION_RESTARTS } from '../update/journal.js';
import { canTransition, type UpdateEvent } from '../update/transition-table.js';
import { failureOf, UpdateFailure } from '../update/update-failure.js';
import { planSteps, stepTransitions, type CurrentModelState, type Step } from './planner.js';

/** An update report without the envelope fields the outbox assigns. */
export type ReportDraft = Omit<UpdateReport, 'v' | 'seq'>;

export interface ReconcilerOptions {
  store: StateStore;
  models: ModelStore;
  downloader: ArtifactDownloader;
  runtimes: RuntimeRegistry;
  capabilities: DeviceCapabilities;
  /** Queues one report (durably); called on every state change. */
  report: (draft: ReportDraft) => Promise<void>;
  healthCheckTimeoutMs?: number;
  /** Default download deadline when the assignment has no timeoutSeconds. */
  updateTimeoutMs?: number;
  maxActivationRestarts?: number;
  /** Minimum time between two progress reports while downloading. */
  progressIntervalMs?: number;
  /** How long after a connection models the hello's answer did not mention wait before being re-stated. */
  resyncFallbackMs?: number;
  now?: () => Date;
  log?: (msg: string) => void;
}

export interface ActiveModel {
  model: string;
  version: string;
  previousVersion: string | null;
  /** Absolute path of the active version directory. */
  path: string;
  /** The build of `version` installed (absent for versions installed before builds were recorded). */
  variant?: string;
}

type StepOutcome = 'continue' | 'stop' | 'replan';

/** Loop breaker bounds for one reconciliation of a model (see `reconcile`). */
const MAX_STALLED_PASSES = 3;
const MAX_PASSES = 20;
/** See beginResync: long enough for a hello's answer in a reconnect storm, short enough to repair a lost report soon. */
export const RESYNC_FALLBACK_MS = 30_000;

/**
 * Drives every model towards its desired state: keeps the latest desired assignment per model,
 * plans with the pure `planSteps`, and executes the plan through the journal (which enforces the
 * transition table). One model's work is serialised; different models run independently.
 *
 * Emits 'active-changed' (model, version | null, variant?) whenever the `current` pointer of a model moves,
 * and 'staged' (model, desired, files) when a download-only or shadow assignment parked verified in `downloaded`.
 */
export class Reconciler extends EventEmitter {
  private readonly journal: UpdateJournal;
  private readonly desired = new Map<string, DesiredModel | null>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  /** Models whose re-statement was asked for while their run was going: stated when it ends. */
  private readonly restateAfterRun = new Set<string>();
  /** Models waiting for the hello's answer before they are re-stated (beginResync). */
  private readonly resyncPending = new Set<string>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private restatesSkipped = 0;
  private readonly aborts = new Map<string, AbortController>();
  private readonly staged = new Map<string, StagedFile[]>();
  private readonly now: () => Date;
  private stopped = false;

  constructor(private readonly opts: ReconcilerOptions) {
    super();
    this.journal = new UpdateJournal(opts.store);
    this.now = opts.now ?? ((): Date => new Date());
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  /**
   * Start-up recovery: decides per journal entry whether to resume, roll back (boot loop) or fail
   * (deadline passed), then schedules reconciliation. Called before the broker connection, so an
   * update interrupted by a crash or power cut continues even while offline.
   */
  async recover(): Promise<void> {
    const persisted = await this.opts.store.list('desired');
    for (const key of persisted) {
      const d = await this.opts.store.read<DesiredModel>(key);
      // Narrowed again: a state persisted by an agent from before builds holds every build's files.
      if (d && !this.desired.has(d.model)) this.desired.set(d.model, this.narrowToBuild(d));
    }
    // A removal a crash interrupted is finished (its record is written before any file goes).
    for (const key of await this.opts.store.list(REMOVED_PREFIX)) {
      const removal = await this.opts.store.read<Removal>(key);
      if (removal && !this.desired.has(removal.model)) this.desired.set(removal.model, null);
    }
    for (const entry of await this.journal.all()) {
      // Every assignment is persisted before anything is journaled for it, and its file is deleted
      // when the model is unassigned: an entry without one belongs to a model unassigned before the
      // crash. Plan for "unassigned" (abandon, or finish what may already run, then remove) instead
      // of resuming the old assignment offline.
      if (!this.desired.has(entry.model)) this.desired.set(entry.model, null);
      const decision = decideRecovery(entry, this.now(), this.opts.maxActivationRestarts ?? DEFAULT_MAX_ACTIVATION_RESTARTS);
      this.log(`recovery ${entry.model}@${entry.desired.version} in ${entry.state}: ${decision.kind}`);
      const change = recoveryTransition(entry, decision);
      if (change) {
        const next = await this.journal.apply(entry, change.event, this.now(), change.patch);
        if (next.state !== entry.state) await this.emitReport(next);
      }
    }
    // Plan every model now, offline too: resume what a crash interrupted, and start an assignment
    // that was persisted but not begun (no entry, or the ended entry of an older revision). A model
    // whose update ended for its current assignment plans nothing.
    for (const model of this.desired.keys()) this.schedule(model);
  }

  /**
   * Starts re-stating the latest update of every model, with a fresh sequence number. Called on
   * every broker connection, once the hello is out: a report the broker acknowledged can still be
   * lost when the control plane does not store before it acknowledges (an external broker), and an
   * agent that crashed between a state change and its report never sent it. Repeating a state for
   * the same revision changes nothing on the server, so this is always safe; but it costs the
   * control plane a report per model per reconnect, which is most of a fleet's reconnect storm.
   * So each model waits for the hello's answer: its desired message carries the report the control
   * plane stored (`stored`), and the model is re-stated only when that differs from what the device
   * would say (`resyncModel`). Models the answer does not mention, or an answer from a control plane
   * that sends no stored report, are re-stated after RESYNC_FALLBACK_MS, as before.
   */
  async beginResync(): Promise<void> {
    this.endResync();
    const models = await this.statedModels();
    if (models.size === 0) return;
    for (const model of models) this.resyncPending.add(model);
    this.resyncTimer = setTimeout(() => void this.resyncRemaining(), this.opts.resyncFallbackMs ?? RESYNC_FALLBACK_MS);
    this.resyncTimer.unref?.();
  }

  /** The connection ended: what is still pending is decided on the next connection. */
  endResync(): void {
    clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    this.resyncPending.clear();
  }

  /**
   * The hello's answer mentioned a model, with the report the control plane stored for it (if any):
   * re-state the model unless that report already says what the device would say now.
   */
  async resyncModel(model: string, stored: StoredReport | undefined): Promise<void> {
    if (!this.resyncPending.delete(model)) return;
    if (this.resyncPending.size === 0) this.endResync();
    if (stored !== undefined && !this.running.has(model)) {
      try {
        const current = await this.currentReport(model);
        if (current === undefined || storedReportMatches(stored, current)) {
          this.restatesSkipped++;
          return;
        }
      } catch (err: unknown) {
        this.log(`comparing ${model} with the stored report failed: ${String(err)}`);
      }
    }
    await this.restateOrDefer(model);
  }

  /** Re-states the latest update of every model now (the fallback of beginResync, and after a restart). */
  async reportCurrentStates(): Promise<void> {
    for (const model of await this.statedModels()) await this.restateOrDefer(model);
  }

  /** Re-statements the hello's answer made unnecessary (the stored report matched). */
  get skippedRestates(): number {
    return this.restatesSkipped;
  }

  private async resyncRemaining(): Promise<void> {
    const models = [...this.resyncPending];
    this.endResync();
    for (const model of models) await this.restateOrDefer(model);
  }

  /** Every model with something to re-state: a journal entry, or a removal (a removed model has no entry any more). */
  private async statedModels(): Promise<Set<string>> {
    const models = new Set((await this.journal.all()).map((e) => e.model));
    for (const key of await this.opts.store.list(REMOVED_PREFIX)) {
      const removal = await this.opts.store.read<Removal>(key);
      if (removal) models.add(removal.model);
    }
    return models;
  }

  private async restateOrDefer(model: string): Promise<void> {
    // A run going now may change the entry under us, and a stale state sent after its transition
    // would win on the server (later seq). Nor can it be skipped: a run that finds nothing to do
    // (the hello's answer re-delivering an ended revision) reports nothing, and a report lost in
    // the crash would never be sent again. So the run states the model once it ends.
    if (this.running.has(model)) this.restateAfterRun.add(model);
    else await this.restate(model);
  }

  /** What re-stating the model would report now, in the fields the control plane stores; undefined: nothing. */
  private async currentReport(model: string): Promise<StoredReport | undefined> {
    const entry = await this.journal.load(model);
    const p = await this.opts.models.pointers(model);
    if (entry) {
      if (entry.state === 'idle') return undefined; // emitReport sends nothing for it either
      return { version: entry.desired.version, revision: entry.desired.revision, state: entry.state, activeVersion: p.active, previousVersion: p.previous };
    }
    const removal = await this.opts.store.read<Removal>(removedKey(model));
    if (!removal || p.active !== null || p.previous !== null) return undefined;
    return { version: removal.version, revision: removal.revision, state: 'removed', activeVersion: null, previousVersion: null };
  }

  /**
   * New desired state for a model; null = unassigned, with the revision of the unassignment when
   * the control plane sent one. Desired states are not retained and are re-sent on every hello, so
   * they can arrive out of order: revisions are monotonic per device and model, and anything older
   * than what this device already knows (an assignment, or the clear that ended it) is ignored.
   */
  async setDesired(model: string, desired: DesiredModel | null, clearedRevision?: number): Promise<void> {
    const prev = this.desired.get(model);
    const known = Math.max(prev?.revision ?? -1, (await this.journal.load(model))?.desired.revision ?? -1);
    if (desired) {
      const cleared = (await this.opts.store.read<{ revision: number }>(`cleared/${model}`))?.revision ?? -1;
      if (desired.revision < known || desired.revision <= cleared) {
        this.log(`ignoring stale desired state for ${model}: revision ${desired.revision} (have ${Math.max(known, cleared)})`);
        return;
      }
    } else if (clearedRevision !== undefined) {
      if (clearedRevision < known) {
        this.log(`ignoring stale clear for ${model}: revision ${clearedRevision} < ${known}`);
        return;
      }
      await this.opts.store.write(`cleared/${model}`, { revision: clearedRevision });
    }
    // From here on the assignment is the one build this device runs (see narrowToBuild).
    if (desired) desired = this.narrowToBuild(desired);
    if (prev && desired && prev.revision === desired.revision && prev.version === desired.version) {
      this.desired.set(model, desired);
      this.schedule(model);
      return;
    }
    this.desired.set(model, desired);
    if (desired) {
      await this.opts.store.write(`desired/${model}`, desired);
      // From now on this assignment's reports tell what runs; a repeated removal would contradict them.
      await this.opts.store.delete(removedKey(model));
    } else await this.opts.store.delete(`desired/${model}`);
    // A download for a superseded assignment is pointless: abort it, the re-plan abandons it.
    this.aborts.get(model)?.abort(new Error('superseded'));
    this.schedule(model);
  }

  /**
   * Keeps only the build this device runs: the one the control plane chose (`variant`), else the
   * best one that fits by the shared rule (selectVariant). Everything after this (download, TUF
   * verification, install, health check) sees exactly that build's files. When no build fits,
   * the assignment is kept as it came and the check-compatibility step refuses it.
   */
  private narrowToBuild(desired: DesiredModel): DesiredModel {
    const choice = selectVariant(desired.artifacts, this.opts.capabilities, desired.variant);
    if (!choice.ok) return desired;
    return { ...desired, variant: choice.variant, artifacts: choice.artifacts };
  }

  /** Install command for a download-only assignment parked in `downloaded`. */
  async requestInstall(model: string, version: string, revision: number): Promise<boolean> {
    const entry = await this.journal.load(model);
    if (!entry || entry.desired.version !== version || entry.desired.revision !== revision || entry.state !== 'downloaded') {
      this.log(`install command for ${model}@${version} r${revision} ignored: no matching downloaded update`);
      return false;
    }
    // The command itself is the table's `install` row: the staged bytes are verified again next.
    await this.apply(entry, 'install', { installRequested: true });
    this.schedule(model);
    return true;
  }

  /** Runs reconciliation of `model` soon; coalesces while one is running. */
  schedule(model: string): void {
    if (this.stopped) return;
    if (this.running.has(model)) {
      this.dirty.add(model);
      return;
    }
    const run = (async (): Promise<void> => {
      let ended = false;
      try {
        do {
          this.dirty.delete(model);
          await this.reconcile(model);
        } while (this.dirty.has(model) && !this.stopped);
      } catch (err: unknown) {
        this.log(`reconcile ${model} failed: ${err instanceof Error ? err.stack : String(err)}`);
        if (!this.stopped) {
          ended = await this.breakLoop(model, err instanceof Error ? err.message : String(err)).catch((e: unknown) => {
            this.log(`loop breaker ${model}: ${String(e)}`);
            return false;
          });
        }
      } finally {
        // Still inside the run, so no transition of this model can interleave with the re-statement.
        if (this.restateAfterRun.delete(model)) await this.restate(model);
        this.running.delete(model);
        this.emit('idle', model);
      }
      // The stuck update ended: plan once more for the current assignment (a failed revision plans nothing).
      if (ended) this.schedule(model);
    })();
    this.running.set(model, run);
  }

  /**
   * The latest update of `model` again: its journal entry, or, once a removal took the entry, the
   * removal (only when its files are gone: an interrupted removal is reported when recovery
   * finishes it).
   */
  private async restate(model: string): Promise<void> {
    try {
      const entry = await this.journal.load(model);
      if (entry) {
        await this.emitReport(entry);
        return;
      }
      const removal = await this.opts.store.read<Removal>(removedKey(model));
      const p = await this.opts.models.pointers(model);
      if (removal && p.active === null && p.previous === null) await this.emitRemoval(removal);
    } catch (err: unknown) {
      // The next connection states it again.
      this.log(`re-stating ${model} failed: ${String(err)}`);
    }
  }

  /** Resolves when no model has work running or queued. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const a of this.aborts.values()) a.abort(new Error('agent stopping'));
    await this.settled();
  }

  async journalEntries(): Promise<JournalEntry[]> {
    return this.journal.all();
  }

  async activeModels(): Promise<ActiveModel[]> {
    const out: ActiveModel[] = [];
    for (const model of await this.opts.models.models()) {
      const p = await this.opts.models.pointers(model);
      if (!p.active) continue;
      const variant = await this.installedVariant(model, p.active);
      out.push({ model, version: p.active, previousVersion: p.previous, path: this.opts.models.versionPath(model, p.active), ...(variant ? { variant } : {}) });
    }
    return out;
  }

  /** The build installed for a version (recorded at install, so telemetry can name it after a restart or a rollback). */
  async installedVariant(model: string, version: string): Promise<string | undefined> {
    return (await this.opts.store.read<{ variant: string }>(variantKey(model, version)))?.variant;
  }

  private async current(model: string, entry: JournalEntry | undefined): Promise<CurrentModelState> {
    const p = await this.opts.models.pointers(model);
    return {
      activeVersion: p.active,
      previousVersion: p.previous,
      ...(entry
        ? {
            update: { version: entry.desired.version, revision: entry.desired.revision, state: entry.state, installRequested: entry.installRequested ?? false },
          }
        : {}),
    };
  }

  private async reconcile(model: string): Promise<void> {
    // Each pass executes one plan; re-planning covers assignments that changed meanwhile. A pass
    // that starts where the previous one started (same journaled state and revision, same desired
    // revision) made no progress; a few of those in a row, or too many passes, trip the loop breaker.
    let stalled = 0;
    let previous: string | undefined;
    for (let pass = 0; !this.stopped; pass++) {
      const desired = this.desired.has(model) ? (this.desired.get(model) ?? null) : undefined;
      let entry = await this.journal.load(model);
      if (desired === undefined && !entry) return; // never heard of this model
      const effective = desired === undefined ? (entry?.desired ?? null) : desired;
      const steps = planSteps(effective, await this.current(model, entry));
      if (steps.length === 0) return;
      const key = `${entry?.desired.revision ?? '-'}|${entry?.state ?? '-'}|${effective?.revision ?? '-'}`;
      stalled = key === previous ? stalled + 1 : 0;
      previous = key;
      if (stalled >= MAX_STALLED_PASSES || pass >= MAX_PASSES) {
        const reason = `no progress after ${pass} passes (journal ${entry?.state ?? 'empty'}, plan ${steps.map((s) => s.kind).join(' -> ')})`;
        if (pass < MAX_PASSES && (await this.breakLoop(model, reason))) {
          stalled = 0;
          previous = undefined;
          continue; // the stuck update ended: plan for the current assignment
        }
        return;
      }
      this.log(`plan ${model}: ${steps.map((s) => s.kind).join(' -> ')}`);
      for (const step of steps) {
        if (this.stopped) return;
        const r = await this.execute(model, step, entry, effective);
        entry = r.entry;
        if (r.outcome !== 'continue') break;
      }
      // Whatever ended the plan, plan again: an empty plan is the only normal end. After a rollback
      // or a failure that ended an older assignment, this is what starts the newer one (invariant 2).
    }
  }

  private async apply(
    entry: JournalEntry,
    event: UpdateEvent,
    patch: Partial<Pick<JournalEntry, 'failure' | 'installRequested' | 'restarts'>> = {},
    progress?: { bytes: number; total: number },
  ): Promise<JournalEntry> {
    const next = await this.journal.apply(entry, event, this.now(), patch);
    await this.emitReport(next, progress);
    return next;
  }

  private async emitReport(entry: JournalEntry, progress?: { bytes: number; total: number }): Promise<void> {
    if (entry.state === 'idle') return; // the initial and abandoned states are not news to the server
    const p = await this.opts.models.pointers(entry.model);
    await this.opts.report({
      model: entry.model,
      version: entry.desired.version,
      revision: entry.desired.revision,
      state: entry.state,
      activeVersion: p.active,
      previousVersion: p.previous,
      ...(entry.failure && ['failed', 'rolled-back', 'rolling-back', 'incompatible'].includes(entry.state) ? { failure: entry.failure } : {}),
      ...(progress ? { progress } : {}),
      ...(entry.desired.rolloutId ? { rolloutId: entry.desired.rolloutId } : {}),
      ...(entry.desired.variant && entry.state !== 'incompatible' ? { variant: entry.desired.variant } : {}),
      at: this.now().toISOString(),
    });
  }

  /** The answer to an unassignment: nothing of the model runs any more (`removed`, see REPORT_STATES). */
  private async emitRemoval(removal: Removal): Promise<void> {
    await this.opts.report({
      model: removal.model,
      version: removal.version,
      revision: removal.revision,
      state: 'removed',
      activeVersion: null,
      previousVersion: null,
      at: this.now().toISOString(),
    });
  }

  /**
   * Records the removal about to happen before any file goes, so a crash half-way still ends in
   * a `removed` report (re-stated on the next connection). The revision is the unassignment's;
   * a clear that came without one (an older control plane) is answered with the last assignment's,
   * which the control plane takes as news about what runs, not about its current assignment.
   */
  private async noteRemoval(model: string, entry: JournalEntry | undefined): Promise<Removal | undefined> {
    const p = await this.opts.models.pointers(model);
    const version = p.active ?? p.previous;
    if (version === null) return undefined;
    const cleared = await this.opts.store.read<{ revision: number }>(`cleared/${model}`);
    const removal: Removal = { model, version, revision: cleared?.revision ?? entry?.desired.revision ?? 0 };
    await this.opts.store.write(removedKey(model), removal);
    return removal;
  }

  private async fail(entry: JournalEntry, err: unknown, fallback: FailureCode): Promise<JournalEntry> {
    const failure = failureOf(err, fallback);
    this.log(`update ${entry.model}@${entry.desired.version} ${entry.state} failed: ${failure.code}: ${failure.message}`);
    return this.apply(entry, 'fail', { failure });
  }

  private need(entry: JournalEntry | undefined, step: Step): JournalEntry {
    if (!entry) throw new Error(`step ${step.kind} without a journaled update`);
    return entry;
  }

  /**
   * Runs one step along the rows `stepTransitions` names for it: opens the entry if the step starts
   * a new update, applies the events that journal the step's working state, does the work, then
   * applies the event that ends the step. Failures apply the step's failure event (and roll back
   * once the new version may be active). No state change happens anywhere else.
   */
  private async execute(
    model: string,
    step: Step,
    entryIn: JournalEntry | undefined,
    desired: DesiredModel | null,
  ): Promise<{ entry: JournalEntry | undefined; outcome: StepOutcome }> {
    const forDesired =
      entryIn !== undefined && desired !== null && entryIn.desired.revision === desired.revision && entryIn.desired.version === desired.version;
    const t = stepTransitions(step, entryIn?.state, forDesired);
    let entry = entryIn;
    if (t.begin) {
      if (!desired) return { entry, outcome: 'stop' };
      const p = await this.opts.models.pointers(model);
      entry =
        step.kind === 'acknowledge'
          ? // Nothing changes on the device, so nothing to roll back to and nothing to time out.
            await this.journal.begin(desired, p.previous, p.previous, this.now(), null)
          : await this.journal.begin(desired, p.active, p.previous, this.now(), this.opts.updateTimeoutMs ?? 3_600_000);
    }
    for (const event of t.enter) entry = await this.apply(this.need(entry, step), event);
    const removal = step.kind === 'remove-model' ? await this.noteRemoval(model, entry) : undefined;

    const ended = await this.work(model, step, entry);
    if (ended) return ended;

    if (t.exit) entry = await this.apply(this.need(entry, step), t.exit, step.kind === 'commit' ? { restarts: 0 } : {});
    if (step.kind === 'commit') await this.cleanup(model, this.need(entry, step).desired);
    if (t.removes) {
      await this.journal.remove(model);
      entry = undefined;
    }
    if (step.kind === 'remove-model') {
      await this.opts.store.delete(`desired/${model}`);
      this.desired.delete(model);
      this.emit('active-changed', model, null);
      // Without this report the control plane would go on counting the device on the removed version.
      if (removal) await this.emitRemoval(removal);
      return { entry, outcome: 'stop' };
    }
    if (step.kind === 'verify' && step.then === 'stage') {
      const staged = this.need(entry, step);
      this.emit('staged', model, staged.desired, this.staged.get(model) ?? []);
      return { entry, outcome: 'stop' };
    }
    return { entry, outcome: 'continue' };
  }

  /**
   * The work of one step, with the step's working state already journaled. Returns undefined when
   * it succeeded (the caller applies the step's exit event), or how the plan ends here.
   */
  private async work(
    model: string,
    step: Step,
    entry: JournalEntry | undefined,
  ): Promise<{ entry: JournalEntry | undefined; outcome: StepOutcome } | undefined> {
    switch (step.kind) {
      case 'abandon': {
        const e = this.need(entry, step);
        await this.opts.downloader.discard(e.desired).catch(() => undefined);
        this.staged.delete(model);
        // An install cut short may have left a version directory that nothing points at.
        await this.opts.models.gc(model).catch((err: unknown) => this.log(`gc ${model}: ${String(err)}`));
        return undefined;
      }
      case 'check-compatibility': {
        const e = this.need(entry, step);
        // Before anything else: a target of another model version is refused as an attack, not as
        // an incompatibility (`failed`, not `incompatible`), and costs no download.
        const binding = checkTargetBinding(e.desired);
        if (!binding.ok) {
          this.log(`update ${model}@${e.desired.version} refused: ${binding.message}`);
          return { entry: await this.apply(e, 'fail', { failure: { code: binding.code, message: binding.message } }), outcome: 'stop' };
        }
        // The same rule the control plane chose the build with; an assignment it got wrong (or
        // made without this device's inventory) is refused here, before any byte is downloaded.
        const result = selectVariant(e.desired.artifacts, this.opts.capabilities, e.desired.variant);
        if (result.ok) return undefined;
        return { entry: await this.apply(e, 'reject', { failure: { code: result.code, message: result.reason } }), outcome: 'stop' };
      }
      case 'download': {
        const e = this.need(entry, step);
        const controller = new AbortController();
        this.aborts.set(model, controller);
        let lastProgress = Date.now(); // the `downloading` report itself counts as the first progress
        // Progress reports are chained and drained before the next transition, so seq order always
        // matches state order on the wire.
        let progressReports: Promise<void> = Promise.resolve();
        try {
          await this.opts.downloader.fetch(e.desired, {
            signal: controller.signal,
            deadline: e.deadline ? Date.parse(e.deadline) : Date.now() + (this.opts.updateTimeoutMs ?? 3_600_000),
            onProgress: (p) => {
              const t = Date.now();
              if (t - lastProgress < (this.opts.progressIntervalMs ?? 10_000) || p.bytes >= p.total) return;
              lastProgress = t;
              progressReports = progressReports.then(() => this.emitReport(e, p)).catch(() => undefined); // advisory only
            },
          });
          await progressReports;
          return undefined;
        } catch (err: unknown) {
          await progressReports;
          if (controller.signal.aborted) return { entry: e, outcome: this.stopped ? 'stop' : 'replan' };
          const failed = await this.fail(e, err, 'download-failed');
          if (failed.failure?.code === 'verification-failed') await this.opts.downloader.discard(failed.desired).catch(() => undefined);
          return { entry: failed, outcome: 'stop' };
        } finally {
          this.aborts.delete(model);
        }
      }
      case 'verify': {
        const e = this.need(entry, step);
        try {
          this.staged.set(model, await this.opts.downloader.verify(e.desired));
          return undefined;
        } catch (err: unknown) {
          const failed = await this.fail(e, err, 'verification-failed');
          await this.opts.downloader.discard(failed.desired).catch(() => undefined);
          return { entry: failed, outcome: 'stop' };
        }
      }
      case 'install': {
        const e = this.need(entry, step);
        try {
          // After a restart the staged list is gone: re-verify (never install unverified bytes).
          const files = this.staged.get(model) ?? (await this.opts.downloader.verify(e.desired));
          await this.opts.models.install(model, e.desired.version, files);
          if (e.desired.variant) await this.opts.store.write(variantKey(model, e.desired.version), { variant: e.desired.variant });
        } catch (err: unknown) {
          return { entry: await this.fail(e, err, 'install-failed'), outcome: 'stop' };
        }
        this.staged.delete(model);
        return undefined;
      }
      case 'activate': {
        const e = this.need(entry, step);
        try {
          await this.opts.models.setPointers(model, e.desired.version, e.previousVersion);
          this.emit('active-changed', model, e.desired.version, e.desired.variant);
          return undefined;
        } catch (err: unknown) {
          return this.rollBack(model, await this.fail(e, err, 'install-failed'));
        }
      }
      case 'health-check': {
        const e = this.need(entry, step);
        try {
          await this.healthCheck(model, e.desired);
          return undefined;
        } catch (err: unknown) {
          return this.rollBack(model, await this.fail(e, err, 'health-check-failed'));
        }
      }
      case 'roll-back':
        // Applies the step's own rows (restored, or fail when even that is impossible).
        return this.rollBack(model, this.need(entry, step));
      case 'commit':
      case 'acknowledge':
        return undefined;
      case 'remove-model':
        await this.opts.models.remove(model);
        return undefined;
    }
  }

  /**
   * Loop breaker (in the spirit of Mender's state-loop guard): when reconciling a model neither
   * converges nor can go on (an unexpected error, or passes that change nothing), the journaled
   * update is ended through the table's `fail` row (rolled back first if the new version may be
   * active), so the model is never left mid-update. The control plane retries with a new revision.
   */
  private async breakLoop(model: string, reason: string): Promise<boolean> {
    const entry = await this.journal.load(model);
    if (!entry || !canTransition(entry.state, 'fail')) return false;
    this.log(`loop breaker: ending ${model}@${entry.desired.version} r${entry.desired.revision} in ${entry.state}: ${reason}`);
    const failed = await this.apply(entry, 'fail', { failure: { code: 'internal', message: `update stopped by the loop breaker: ${reason}`.slice(0, 2000) } });
    if (failed.state === 'rolling-back') await this.rollBack(model, failed);
    return true;
  }

  /** `rolling-back`: point `current` back at the version that ran before, then `rolled-back`. */
  private async rollBack(model: string, entryIn: JournalEntry): Promise<{ entry: JournalEntry; outcome: StepOutcome }> {
    let e = entryIn;
    try {
      await this.opts.models.setPointers(model, e.previousVersion, e.priorPrevious);
      this.emit('active-changed', model, e.previousVersion, e.previousVersion ? await this.installedVariant(model, e.previousVersion) : undefined);
      e = await this.apply(e, 'restored');
      await this.cleanup(model, e.desired);
    } catch (err: unknown) {
      const failure = failureOf(err, 'internal');
      e = await this.apply(e, 'fail', { failure: { code: e.failure?.code ?? failure.code, message: `rollback failed: ${failure.message}` } });
    }
    return { entry: e, outcome: 'stop' };
  }

  private async cleanup(model: string, desired: DesiredModel): Promise<void> {
    await this.opts.models.gc(model).catch((err: unknown) => this.log(`gc ${model}: ${String(err)}`));
    await this.opts.downloader.discard(desired).catch(() => undefined);
  }

  /** Loads the new version through its runtime and runs the self-test, bounded by a timeout. */
  private async healthCheck(model: string, desired: DesiredModel): Promise<void> {
    const artifact = desired.artifacts[0]!;
    const factory = this.opts.runtimes.get(artifact.runtime);
    if (!factory) throw new UpdateFailure('health-check-failed', `runtime ${artifact.runtime} is not available`);
    const runtime = factory.create();
    const path = join(this.opts.models.versionPath(model, desired.version), artifactFileName(artifact.targetPath));
    const timeoutMs = this.opts.healthCheckTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UpdateFailure('health-check-timeout', `health check did not finish within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([
        (async (): Promise<void> => {
          await runtime.load(path, artifact);
          await runtime.selfTest();
        })(),
        timeout,
      ]);
    } catch (err: unknown) {
      if (err instanceof UpdateFailure) throw err;
      throw new UpdateFailure('health-check-failed', err instanceof Error ? err.message : String(err), { cause: err });
    } finally {
      clearTimeout(timer);
      await runtime.unload().catch(() => undefined);
    }
  }
}

/** The last removal of a model, kept for re-statement until a newer assignment is accepted. */
interface Removal {
  model: string;
  version: string;
  revision: number;
}

const REMOVED_PREFIX = 'removed';

function removedKey(model: string): string {
  return `${REMOVED_PREFIX}/${model}`;
}

function variantKey(model: string, version: string): string {
  return `variant/${model}/${version}`;
}

export type { UpdateState };
