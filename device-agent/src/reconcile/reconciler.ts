import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { DesiredModel, FailureCode, UpdateReport, UpdateState } from '@fleetline/protocol';
import { checkCompatibility, type DeviceCapabilities } from '../compat/compatibility.js';
import type { ArtifactDownloader } from '../download/downloader.js';
import { artifactFileName } from '../download/downloader.js';
import type { ModelStore, StagedFile } from '../install/model-store.js';
import type { RuntimeRegistry } from '../runtime/model-runtime.js';
import type { StateStore } from '../storage/store.js';
import { decideRecovery, UpdateJournal, type JournalEntry, DEFAULT_MAX_ACTIVATION_RESTARTS } from '../update/journal.js';
import type { UpdateEvent } from '../update/transition-table.js';
import { failureOf, UpdateFailure } from '../update/update-failure.js';
import { planSteps, type CurrentModelState, type Step } from './planner.js';

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
  now?: () => Date;
  log?: (msg: string) => void;
}

export interface ActiveModel {
  model: string;
  version: string;
  previousVersion: string | null;
  /** Absolute path of the active version directory. */
  path: string;
}

type StepOutcome = 'continue' | 'stop' | 'replan';

/**
 * Drives every model towards its desired state: keeps the latest desired assignment per model,
 * plans with the pure `planSteps`, and executes the plan through the journal (which enforces the
 * transition table). One model's work is serialised; different models run independently.
 *
 * Emits 'active-changed' (model, version | null) whenever the `current` pointer of a model moves.
 */
export class Reconciler extends EventEmitter {
  private readonly journal: UpdateJournal;
  private readonly desired = new Map<string, DesiredModel | null>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
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
      if (d && !this.desired.has(d.model)) this.desired.set(d.model, d);
    }
    for (const entry of await this.journal.all()) {
      const decision = decideRecovery(entry, this.now(), this.opts.maxActivationRestarts ?? DEFAULT_MAX_ACTIVATION_RESTARTS);
      this.log(`recovery ${entry.model}@${entry.desired.version} in ${entry.state}: ${decision.kind}`);
      if (decision.kind === 'none') continue;
      if (decision.kind === 'resume') {
        if (decision.restarts !== entry.restarts) await this.journal.save({ ...entry, restarts: decision.restarts });
      } else if (decision.kind === 'roll-back') {
        const next = await this.journal.apply({ ...entry, restarts: decision.restarts }, 'fail', this.now(), {
          failure: { code: decision.code, message: decision.message },
        });
        await this.emitReport(next);
      } else {
        const next = await this.journal.apply(entry, 'fail', this.now(), { failure: { code: decision.code, message: decision.message } });
        await this.emitReport(next);
      }
      if (!this.desired.has(entry.model)) this.desired.set(entry.model, entry.desired);
      this.schedule(entry.model);
    }
  }

  /**
   * Re-states the latest update of every model, with a fresh sequence number. Called on every
   * broker connection: a report the broker acknowledged can still be lost if the control plane
   * dies before storing it, and the server acts only on what it stored. Repeating a state for the
   * same revision changes nothing on the server, so this is always safe.
   */
  async reportCurrentStates(): Promise<void> {
    for (const entry of await this.journal.all()) {
      if (this.running.has(entry.model)) continue; // its next transition is reported anyway
      await this.emitReport(entry);
    }
  }

  /** New desired state for a model (null = unassigned). */
  async setDesired(model: string, desired: DesiredModel | null): Promise<void> {
    const prev = this.desired.get(model);
    if (desired) {
      // Revisions are monotonic per device and model: an older one is a stale redelivery (e.g. a
      // retained message that a newer assignment has not replaced on this broker yet). Ignore it.
      const newest = Math.max(prev?.revision ?? -1, (await this.journal.load(model))?.desired.revision ?? -1);
      if (desired.revision < newest) {
        this.log(`ignoring stale desired state for ${model}: revision ${desired.revision} < ${newest}`);
        return;
      }
    }
    if (prev && desired && prev.revision === desired.revision && prev.version === desired.version) {
      this.desired.set(model, desired);
      this.schedule(model);
      return;
    }
    this.desired.set(model, desired);
    if (desired) await this.opts.store.write(`desired/${model}`, desired);
    else await this.opts.store.delete(`desired/${model}`);
    // A download for a superseded assignment is pointless: abort it, the re-plan abandons it.
    this.aborts.get(model)?.abort(new Error('superseded'));
    this.schedule(model);
  }

  /** Install command for a download-only assignment parked in `downloaded`. */
  async requestInstall(model: string, version: string, revision: number): Promise<boolean> {
    const entry = await this.journal.load(model);
    if (!entry || entry.desired.version !== version || entry.desired.revision !== revision || entry.state !== 'downloaded') {
      this.log(`install command for ${model}@${version} r${revision} ignored: no matching downloaded update`);
      return false;
    }
    await this.journal.save({ ...entry, installRequested: true });
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
      try {
        do {
          this.dirty.delete(model);
          await this.reconcile(model);
        } while (this.dirty.has(model) && !this.stopped);
      } catch (err: unknown) {
        this.log(`reconcile ${model} failed: ${err instanceof Error ? err.stack : String(err)}`);
      } finally {
        this.running.delete(model);
        this.emit('idle', model);
      }
    })();
    this.running.set(model, run);
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
      if (p.active) out.push({ model, version: p.active, previousVersion: p.previous, path: this.opts.models.versionPath(model, p.active) });
    }
    return out;
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
    // Each pass executes one plan; re-planning covers assignments that changed meanwhile. The bound
    // protects against a planner/executor disagreement turning into a busy loop.
    for (let pass = 0; pass < 6 && !this.stopped; pass++) {
      const desired = this.desired.has(model) ? (this.desired.get(model) ?? null) : undefined;
      let entry = await this.journal.load(model);
      if (desired === undefined && !entry) return; // never heard of this model
      const effective = desired === undefined ? (entry?.desired ?? null) : desired;
      const steps = planSteps(effective, await this.current(model, entry));
      if (steps.length === 0) return;
      this.log(`plan ${model}: ${steps.map((s) => s.kind).join(' -> ')}`);
      let outcome: StepOutcome = 'continue';
      for (const step of steps) {
        if (this.stopped) return;
        const r = await this.execute(model, step, entry, effective);
        entry = r.entry;
        outcome = r.outcome;
        if (outcome !== 'continue') break;
      }
      if (outcome === 'stop') return;
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
      at: this.now().toISOString(),
    });
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

  private async execute(
    model: string,
    step: Step,
    entryIn: JournalEntry | undefined,
    desired: DesiredModel | null,
  ): Promise<{ entry: JournalEntry | undefined; outcome: StepOutcome }> {
    let entry = entryIn;
    switch (step.kind) {
      case 'abandon': {
        const e = this.need(entry, step);
        await this.journal.apply(e, 'abandon', this.now());
        await this.opts.downloader.discard(e.desired).catch(() => undefined);
        this.staged.delete(model);
        await this.journal.remove(model);
        return { entry: undefined, outcome: 'continue' };
      }
      case 'check-compatibility': {
        if (!desired) return { entry, outcome: 'stop' };
        const p = await this.opts.models.pointers(model);
        if (!entry || entry.desired.revision !== desired.revision || entry.desired.version !== desired.version || entry.state !== 'idle') {
          entry = await this.journal.begin(desired, p.active, p.previous, this.now(), this.opts.updateTimeoutMs ?? 3_600_000);
        }
        const result = checkCompatibility(desired.artifacts, this.opts.capabilities);
        if (!result.ok) {
          entry = await this.apply(entry, 'reject', { failure: { code: result.code, message: result.message } });
          return { entry, outcome: 'stop' };
        }
        return { entry, outcome: 'continue' };
      }
      case 'download': {
        let e = this.need(entry, step);
        if (e.state === 'idle') e = await this.apply(e, 'start');
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
              const current = e;
              progressReports = progressReports.then(() => this.emitReport(current, p)).catch(() => undefined); // advisory only
            },
          });
          await progressReports;
        } catch (err: unknown) {
          await progressReports;
          if (controller.signal.aborted) return { entry: e, outcome: this.stopped ? 'stop' : 'replan' };
          e = await this.fail(e, err, 'download-failed');
          if (e.failure?.code === 'verification-failed') await this.opts.downloader.discard(e.desired).catch(() => undefined);
          return { entry: e, outcome: 'stop' };
        } finally {
          this.aborts.delete(model);
        }
        e = await this.apply(e, 'fetched');
        return { entry: e, outcome: 'continue' };
      }
      case 'verify': {
        let e = this.need(entry, step);
        if (e.state === 'downloading') e = await this.apply(e, 'fetched');
        if (e.state === 'downloaded') e = await this.apply(e, 'install');
        try {
          this.staged.set(model, await this.opts.downloader.verify(e.desired));
        } catch (err: unknown) {
          e = await this.fail(e, err, 'verification-failed');
          await this.opts.downloader.discard(e.desired).catch(() => undefined);
          return { entry: e, outcome: 'stop' };
        }
        if (step.then === 'stage') {
          e = await this.apply(e, 'stage');
          return { entry: e, outcome: 'stop' };
        }
        e = await this.apply(e, 'verified');
        return { entry: e, outcome: 'continue' };
      }
      case 'install': {
        let e = this.need(entry, step);
        try {
          // After a restart the staged list is gone: re-verify (never install unverified bytes).
          const files = this.staged.get(model) ?? (await this.opts.downloader.verify(e.desired));
          await this.opts.models.install(model, e.desired.version, files);
        } catch (err: unknown) {
          e = await this.fail(e, err, 'install-failed');
          return { entry: e, outcome: 'stop' };
        }
        this.staged.delete(model);
        e = await this.apply(e, 'installed');
        return { entry: e, outcome: 'continue' };
      }
      case 'activate': {
        let e = this.need(entry, step);
        try {
          await this.opts.models.setPointers(model, e.desired.version, e.previousVersion);
          this.emit('active-changed', model, e.desired.version);
        } catch (err: unknown) {
          e = await this.fail(e, err, 'install-failed');
          return this.rollBack(model, e);
        }
        e = await this.apply(e, 'activated');
        return { entry: e, outcome: 'continue' };
      }
      case 'health-check': {
        let e = this.need(entry, step);
        try {
          await this.healthCheck(model, e.desired);
        } catch (err: unknown) {
          e = await this.fail(e, err, 'health-check-failed');
          return this.rollBack(model, e);
        }
        return { entry: e, outcome: 'continue' };
      }
      case 'commit': {
        let e = this.need(entry, step);
        e = await this.apply(e, 'healthy', { restarts: 0 });
        await this.cleanup(model, e.desired);
        return { entry: e, outcome: 'continue' };
      }
      case 'roll-back':
        return this.rollBack(model, this.need(entry, step));
      case 'acknowledge': {
        if (!desired) return { entry, outcome: 'stop' };
        const p = await this.opts.models.pointers(model);
        // Bookkeeping, not a transition: the assignment is satisfied by what already runs, and the
        // journal must say so, or every redelivery of the retained desired state would re-acknowledge.
        const t = this.now().toISOString();
        const e: JournalEntry = {
          model,
          desired,
          state: 'committed',
          previousVersion: p.previous,
          priorPrevious: p.previous,
          restarts: 0,
          startedAt: t,
          updatedAt: t,
        };
        await this.journal.save(e);
        await this.emitReport(e);
        return { entry: e, outcome: 'continue' };
      }
      case 'remove-model': {
        await this.opts.models.remove(model);
        await this.journal.remove(model);
        await this.opts.store.delete(`desired/${model}`);
        this.desired.delete(model);
        this.emit('active-changed', model, null);
        return { entry: undefined, outcome: 'stop' };
      }
    }
  }

  /** `rolling-back`: point `current` back at the version that ran before, then `rolled-back`. */
  private async rollBack(model: string, entryIn: JournalEntry): Promise<{ entry: JournalEntry; outcome: StepOutcome }> {
    let e = entryIn;
    try {
      await this.opts.models.setPointers(model, e.previousVersion, e.priorPrevious);
      this.emit('active-changed', model, e.previousVersion);
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

export type { UpdateState };
