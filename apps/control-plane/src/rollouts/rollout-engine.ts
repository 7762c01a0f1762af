import { HttpStatus, Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy, Optional } from '@nestjs/common';
import { type ArtifactRef, TRANSIENT_FAILURE_CODES } from '@fleetline/protocol';
import { DesiredStateService } from '../devices/desired-state.service.js';
import { ReportIngestService } from '../devices/reports/report-ingest.service.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { DomainException } from '../infra/http/domain.exception.js';
import { ModelsService } from '../models/models.service.js';
import { type GateResult, HealthGateService } from '../telemetry/gates/health-gate.contract.js';
import { DriverLease } from './driver-lease.js';
import { inMaintenanceWindow, nextWindowOpening } from './planning/maintenance-window.js';
import { assessWave, decideWave, type WaveAssessment } from './planning/wave-conditions.js';
import { RAMP_WINDOW_MS, rampAfter, rampBudget, type RampDecision, type RampState } from './planning/ramp.js';
import { gateVerdict } from './planning/gate-verdict.js';
import { RolloutPreparer } from './preparation/rollout-preparer.js';
import { type NewEvent, RolloutRepository, type RolloutRow, type WaveRow } from './rollout.repository.js';
import { eventsOf, RolloutReportFollower } from './rollout-report-follower.js';
import { canonicalFailureAction, type FailureAction } from './rollout.types.js';

/** Devices selected, assigned and published per batch. */
export const NOTIFY_BATCH = 5_000;
/** At most this many devices notified per rollout per tick, so one huge wave cannot starve the others. */
const MAX_NOTIFY_PER_TICK = 20_000;
const GATE_EVALUATION_MS = 5_000;
/** Dynamic rollouts look for newly matching devices every max(this, 4 ticks). */
const DYNAMIC_CHECK_MS = 2_000;
const MIN_TICK_GAP_MS = 200;
/** While reverting keeps failing, a rollback-retrying event is recorded at most this often per rollout. */
const ROLLBACK_RETRY_EVENT_MS = 60_000;
/**
 * Reports move rollout rows as they are stored (RolloutReportFollower); the full reconciliation
 * from device_models, whose cost grows with the devices in flight, runs this often per rollout
 * to repair what the follower missed, and at once when this replica becomes the driver.
 */
const REPORT_SWEEP_MS = 10_000;
/** Timeouts are checked at most this often (or every tenth of the timeout, if shorter). */
const TIMEOUT_CHECK_MS = 5_000;

/**
 * Drives every active rollout from the database: applies device reports, times out and retries
 * devices, judges the current wave (success + bake + gates, or failure), starts the next wave
 * and notifies devices in batches. Runs on a periodic tick and wakes early when reports arrive.
 * Only the replica holding the driver lease does anything; all state is in the database, so any
 * replica can take over at any moment and continue exactly where the last one stopped.
 */
@Injectable()
export class RolloutEngine implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RolloutEngine');
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private again = false;
  private stopped = true;
  private lastTickAt = 0;
  private readonly republish = new Set<string>();
  private recoverAll = false;
  private readonly artifacts = new Map<string, ArtifactRef[]>();
  private readonly lastGateEvaluation = new Map<string, number>();
  private readonly lastDynamicCheck = new Map<string, number>();
  /** Notes emitted once per rollout+wave (waiting for approval, stalled, ...), to keep the log about decisions. */
  private readonly noted = new Set<string>();
  private readonly tickListeners: ((rolloutIds: string[]) => void)[] = [];
  /** Failed revert attempts per rolling-back rollout (for the rollback-retrying event). */
  private readonly rollbackRetries = new Map<string, { attempts: number; lastEventAt: number }>();
  private readonly lastSweep = new Map<string, number>();
  private readonly lastTimeoutCheck = new Map<string, number>();
  /** Pace of each ramped rollout since this replica's last notification decision (see rampBudget). */
  private readonly ramps = new Map<string, RampState>();

  constructor(
    private readonly repo: RolloutRepository,
    private readonly lease: DriverLease,
    private readonly desired: DesiredStateService,
    private readonly models: ModelsService,
    private readonly reports: ReportIngestService,
    private readonly follower: RolloutReportFollower,
    private readonly preparer: RolloutPreparer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() private readonly gates?: HealthGateService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.stopped = false;
    this.lease.onAcquired(() => this.requestRecovery());
    this.reports.onReportsApplied(() => this.wake());
    this.follower.onApplied(() => this.wake());
    await this.lease.start();
    this.timer = setInterval(() => this.wake(), Math.max(100, this.config.rolloutTickSeconds * 1000));
    this.timer.unref();
    this.wake();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    while (this.ticking) await this.ticking;
    await this.lease.stop();
  }

  /**
   * Re-publishes every notified-but-unconfirmed device of the active rollouts on the next tick.
   * Called whenever this replica becomes the driver: the previous driver may have crashed
   * between marking a batch notified and publishing it.
   */
  requestRecovery(): void {
    this.recoverAll = true;
    this.wake();
  }

  isDriver(): boolean {
    return this.lease.isDriver();
  }

  /** Listeners told after each tick which rollouts it touched (the SSE stream uses it). */
  onTick(listener: (rolloutIds: string[]) => void): () => void {
    this.tickListeners.push(listener);
    return () => {
      const i = this.tickListeners.indexOf(listener);
      if (i >= 0) this.tickListeners.splice(i, 1);
    };
  }

  /** Runs a tick soon; ticks never overlap (a wake during a tick schedules one more). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    const gap = Date.now() - this.lastTickAt;
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        this.lastTickAt = Date.now();
        await this.tick();
      } while (this.again && !this.stopped);
    };
    const start = (): void => {
      this.ticking = run().finally(() => (this.ticking = undefined));
    };
    if (gap >= MIN_TICK_GAP_MS) start();
    else {
      this.ticking = new Promise<void>((resolve) => setTimeout(resolve, MIN_TICK_GAP_MS - gap)).then(() => run()).finally(() => (this.ticking = undefined));
    }
  }

  /** One pass over every rollout the engine has work for. Exposed for tests and tools. */
  async tick(): Promise<void> {
    if (!this.lease.isDriver() || this.stopped) return;
    // Before listing: a rollout prepared now is driven (started) in this same tick.
    await this.preparer.prepareWaiting();
    let rollouts: RolloutRow[];
    try {
      rollouts = await this.repo.listDriven();
    } catch (err) {
      this.logger.error(`cannot list rollouts: ${String(err)}`);
      return;
    }
    if (this.recoverAll) {
      this.recoverAll = false;
      this.lastSweep.clear();
      for (const r of rollouts) if (r.state === 'running' || r.state === 'paused') this.republish.add(r.id);
    }
    for (const rollout of rollouts) {
      if (this.stopped || !this.lease.isDriver()) return;
      try {
        await this.drive(rollout);
      } catch (err) {
        this.logger.error(`rollout ${rollout.id}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
    const ids = rollouts.map((r) => r.id);
    for (const l of this.tickListeners) l(ids);
  }

  private async drive(initial: RolloutRow): Promise<void> {
    let r = initial;
    const now = new Date();
    // A rollout that notifies no more devices has no ramp to pace.
    if (r.state === 'rolling-back' || r.state === 'completed' || r.state === 'cancelled') this.ramps.delete(r.id);
    if (r.state === 'rolling-back') return this.rollbackStep(r);
    if (r.state === 'completed' || r.state === 'cancelled') return this.syncDevices(r, true);
    // Stripped of every device (higher-priority rollouts took them all, or no build fits any): it
    // ends now rather than baking waves of nobody. A dynamic rollout stays: devices may still join.
    if (!r.spec.dynamic && (await this.repo.cancelWhenNothingLeft(r.id))) return;
    if (r.state === 'scheduled') {
      if (r.startAt.getTime() > now.getTime()) return;
      await this.repo.startWave(
        r.id,
        -1,
        0,
        { type: 'wave-started', wave: 0, message: 'rollout started: wave 1 begins', data: { reason: 'start time reached' } },
        'start',
      );
      r = await this.repo.get(r.id);
      if (r.state !== 'running') return;
    }
    await this.syncDevices(r);
    if (this.republish.has(r.id)) await this.republishNotified(r);
    if (r.state !== 'running') return;
    if (r.endAt && r.endAt.getTime() <= now.getTime()) {
      await this.repo.transition(
        r.id,
        'end-time',
        'end time reached',
        { type: 'completed', message: 'end time reached: no further devices are told' },
        { finished: true },
      );
      return;
    }
    if (r.spec.dynamic) await this.joinDynamic(r, now);
    const advanced = await this.evaluate(r, now);
    const current = advanced ? await this.repo.get(r.id) : r;
    if (current.state === 'running') await this.notify(current, now);
  }

  // ---------------------------------------------------------------- device bookkeeping

  /** True (and remembered) when `key`'s last run for this rollout is at least `everyMs` ago. */
  private due(last: Map<string, number>, id: string, everyMs: number): boolean {
    const now = Date.now();
    if (now - (last.get(id) ?? 0) < everyMs) return false;
    last.set(id, now);
    return true;
  }

  private timeoutDue(r: RolloutRow): boolean {
    return this.due(this.lastTimeoutCheck, r.id, Math.min(TIMEOUT_CHECK_MS, r.spec.timeoutSeconds * 100));
  }

  /**
   * Device bookkeeping of one tick: the periodic sweep of reports the follower missed (with the
   * same events it records), retries, and timeouts. A finished rollout (completed at its success
   * threshold, or cancelled) tells no one and retries nothing, but devices it already told are
   * still installing: their reports are applied and silent ones time out, so every row ends terminal.
   */
  private async syncDevices(r: RolloutRow, finished = false): Promise<void> {
    const changed = this.due(this.lastSweep, r.id, REPORT_SWEEP_MS) ? await this.repo.syncReports(r.id, r.model) : [];
    const events: NewEvent[] = eventsOf(changed.map((c) => ({ ...c, rolloutId: r.id, wave: r.currentWave }))).get(r.id) ?? [];
    if (!finished) {
      const retried = await this.repo.scheduleRetries(r.id, TRANSIENT_FAILURE_CODES, r.spec.retries.max, r.spec.retries.backoffSeconds);
      if (retried > 0) {
        events.push({
          type: 'retries-scheduled',
          wave: r.currentWave,
          message: `${retried} devices with transient failures will be retried`,
          data: { count: retried, backoffSeconds: r.spec.retries.backoffSeconds, maxRetries: r.spec.retries.max },
        });
      }
    }
    const timedOut = this.timeoutDue(r) ? await this.repo.timeOut(r.id, r.spec.timeoutSeconds) : 0;
    if (timedOut > 0)
      events.push({
        type: 'devices-timed-out',
        wave: r.currentWave,
        message: `${timedOut} devices timed out after ${r.spec.timeoutSeconds} s`,
        data: { count: timedOut, timeoutSeconds: r.spec.timeoutSeconds },
      });
    await this.repo.insertEvents(undefined, r.id, events);
  }

  private async joinDynamic(r: RolloutRow, now: Date): Promise<void> {
    const last = this.lastDynamicCheck.get(r.id) ?? 0;
    if (now.getTime() - last < Math.max(DYNAMIC_CHECK_MS, 4 * this.config.rolloutTickSeconds * 1000)) return;
    this.lastDynamicCheck.set(r.id, now.getTime());
    await this.repo.joinNewDevices(r, await this.artifactsOf(r));
  }

  // ---------------------------------------------------------------- wave decisions

  /** Judges the current wave; returns true when the rollout's state or wave changed. */
  private async evaluate(r: RolloutRow, now: Date): Promise<boolean> {
    const waves = await this.repo.waves(r.id);
    const wave = waves[r.currentWave];
    if (!wave) return false;
    const counts = (await this.repo.waveCounts(r.id, wave.idx)).get(wave.idx) ?? {};
    const assessment = assessWave(counts, wave.spec.successPercent, wave.spec.failure, r.action, wave.acceptedFailures);
    let successSince = wave.successSince;
    if (assessment.successMet && !successSince && !assessment.failureMet) {
      successSince = await this.repo.markSuccessSince(r.id, wave.idx);
      await this.repo.insertEvents(undefined, r.id, [
        {
          type: 'wave-succeeded',
          wave: wave.idx,
          message: `wave ${wave.idx + 1} met its success condition: ${assessment.succeeded}/${assessment.members} (${assessment.successPercent}% >= ${wave.spec.successPercent}%); baking ${wave.spec.bakeSeconds} s`,
          data: { ...assessment, requiredPercent: wave.spec.successPercent, bakeSeconds: wave.spec.bakeSeconds },
        },
      ]);
    }
    const decision = decideWave(assessment, wave.spec.bakeSeconds, successSince, now);
    if (decision.kind === 'fail') {
      const f = wave.spec.failure;
      const message = `failure condition met in wave ${wave.idx + 1}: ${assessment.failed} failed of ${assessment.executed} executed (${assessment.failurePercent}%; threshold ${f?.percent !== undefined ? `${f.percent}%` : `${f?.count} devices`}, minExecuted ${f?.minExecuted})`;
      // Specs stored before one vocabulary may still say 'abort'.
      return this.onFailure(r, canonicalFailureAction(r.spec.onFailure), message, {
        ...assessment,
        failure: f,
        acceptedFailures: wave.acceptedFailures,
      });
    }
    const gateOutcome = await this.judgeGates(r, wave, waves, assessment, now);
    if (gateOutcome.kind === 'failed') {
      return this.onFailure(r, canonicalFailureAction(wave.spec.onGateFailure), `health gates failed in wave ${wave.idx + 1}: ${gateOutcome.summary}`, {
        gates: gateOutcome.results,
        ...assessment,
      });
    }
    if (decision.kind !== 'advance') {
      if (decision.kind === 'wait' && assessment.pending === 0 && assessment.inFlight === 0 && assessment.members > 0) {
        this.noteOnce(
          r,
          wave.idx,
          'stalled',
          `wave ${wave.idx + 1} finished without meeting its success condition (${assessment.successPercent}% < ${wave.spec.successPercent}%): retry or advance manually`,
          assessment,
        );
      }
      return false;
    }
    if (gateOutcome.kind === 'pending') {
      this.noteOnce(r, wave.idx, 'gates-pending', `wave ${wave.idx + 1} waits for its health gates: ${gateOutcome.summary}`, { gates: gateOutcome.results });
      return false;
    }
    const lastWave = r.spec.waves.length - 1;
    if (wave.idx >= lastWave) {
      if (r.action === 'download-only') {
        this.noteOnce(r, wave.idx, 'awaiting-install', 'every wave downloaded the version; devices install on POST .../install', assessment);
        return false;
      }
      if (r.spec.dynamic) {
        this.noteOnce(
          r,
          wave.idx,
          'all-waves-done',
          'every wave succeeded; the dynamic rollout keeps enrolling newly matching devices until its end time or a cancel',
          assessment,
        );
        return false;
      }
      await this.repo.completeLastWave(r.id, wave.idx);
      return this.repo.transition(
        r.id,
        'complete',
        null,
        { type: 'completed', wave: wave.idx, message: `rollout completed: last wave ${wave.idx + 1} succeeded and baked`, data: { ...assessment } },
        { finished: true },
      );
    }
    if (wave.spec.manualApproval) {
      this.noteOnce(
        r,
        wave.idx,
        'awaiting-approval',
        `wave ${wave.idx + 1} succeeded and baked; wave ${wave.idx + 2} waits for approval (POST .../advance)`,
        assessment,
      );
      return false;
    }
    return this.repo.startWave(
      r.id,
      wave.idx,
      wave.idx + 1,
      {
        type: 'wave-started',
        wave: wave.idx + 1,
        message: `wave ${wave.idx + 1} succeeded (${assessment.successPercent}% >= ${wave.spec.successPercent}%) and baked ${wave.spec.bakeSeconds} s: wave ${wave.idx + 2} begins`,
        data: { previous: assessment, gates: wave.gateResults },
      },
      'next-wave',
    );
  }

  private async onFailure(r: RolloutRow, action: FailureAction, message: string, data: Record<string, unknown>): Promise<boolean> {
    if (action === 'pause') {
      return this.repo.transition(r.id, 'halt', message, { type: 'paused', wave: r.currentWave, message: `paused: ${message}`, data });
    }
    return this.repo.transition(r.id, 'roll-back', message, {
      type: 'aborted',
      wave: r.currentWave,
      message: `aborting and rolling back: ${message}`,
      data,
    });
  }

  private async judgeGates(
    r: RolloutRow,
    wave: WaveRow,
    waves: WaveRow[],
    assessment: WaveAssessment,
    now: Date,
  ): Promise<{ kind: 'none' } | { kind: 'passed' | 'pending' | 'failed'; results: GateResult[]; summary: string }> {
    if (wave.spec.gates.length === 0 || wave.gatesOverridden) return { kind: 'none' };
    let results = wave.gateResults ?? [];
    const key = `${r.id}:${wave.idx}`;
    const due = now.getTime() - (this.lastGateEvaluation.get(key) ?? 0) >= GATE_EVALUATION_MS;
    if (assessment.succeeded > 0 && due) {
      this.lastGateEvaluation.set(key, now.getTime());
      if (!this.gates) {
        results = wave.spec.gates.map((g) => ({
          metric: g.metric,
          passed: null,
          value: null,
          baseline: null,
          threshold: null,
          samples: 0,
          baselineSamples: 0,
          reason: 'no telemetry health gate service in this deployment',
        }));
      } else {
        results = await this.gates.evaluate({
          model: r.model,
          candidateVersion: r.version,
          baselineVersion: r.baselineVersion,
          rolloutId: r.id,
          waves: waves.filter((w) => w.idx <= wave.idx).map((w) => w.idx),
          gates: wave.spec.gates,
          minSamples: wave.spec.minSamples,
          windowSeconds: wave.spec.windowSeconds,
          now,
        });
      }
      await this.repo.saveGateResults(r.id, wave.idx, results);
    }
    const summary = results
      .map(
        (g) =>
          `${g.metric}${g.variant === undefined ? '' : `[${g.variant}]`}=${g.value ?? 'n/a'} (${g.passed === null ? 'undecided' : g.passed ? 'ok' : 'breached'}: ${g.reason})`,
      )
      .join('; ');
    const buildsGraceOver = wave.startedAt !== null && now.getTime() - wave.startedAt.getTime() >= wave.spec.windowSeconds * 1000;
    const verdict = gateVerdict(results, wave.spec.gates.length, buildsGraceOver);
    return { kind: verdict, results, summary: verdict === 'pending' ? summary || 'no samples yet' : summary };
  }

  private noteOnce(r: RolloutRow, wave: number, kind: string, message: string, data: object): void {
    const key = `${r.id}:${wave}:${kind}`;
    if (this.noted.has(key)) return;
    this.noted.add(key);
    void this.repo
      .insertEvents(undefined, r.id, [{ type: kind, wave, message, data: { ...data } }])
      .catch((err: unknown) => this.logger.warn(`event not recorded: ${String(err)}`));
  }

  // ---------------------------------------------------------------- notifications

  private async notify(r: RolloutRow, now: Date): Promise<void> {
    const windowOpen = inMaintenanceWindow(r.spec.maintenanceWindows, now);
    if (r.installRequestedAt && windowOpen) await this.installDownloaded(r);
    // Outside maintenance windows nobody is told to install; a download-only rollout may still download.
    if (!windowOpen && r.action === 'install') {
      const opens = nextWindowOpening(r.spec.maintenanceWindows, now);
      this.noteOnce(
        r,
        r.currentWave,
        `window-closed:${opens?.toISOString() ?? 'never'}`,
        `outside maintenance windows; next opens ${opens?.toISOString() ?? 'never'}`,
        { nextOpening: opens },
      );
      return;
    }
    let budget = MAX_NOTIFY_PER_TICK;
    // The rollout's own cap, else the replica's default (ROLLOUT_MAX_IN_FLIGHT): a wave is told as
    // fast as its devices finish, not all at once.
    const maxInFlight = r.spec.maxInFlight ?? (this.config.rolloutMaxInFlight || undefined);
    if (maxInFlight !== undefined) budget = Math.min(budget, maxInFlight - (await this.repo.inFlightCount(r.id)));
    // Decided on every tick the rollout could notify, even when the in-flight cap leaves nothing:
    // what is not spent is not saved up (no burst once the cap, a closed window or a pause lifts).
    let ramp: RampDecision | undefined;
    if (r.spec.ramp) {
      const counts = await this.repo.rampCounts(r.id, RAMP_WINDOW_MS / 1000);
      ramp = rampBudget(r.spec.ramp, { now: now.getTime(), ...counts, maxGapMs: this.rampGapMs() }, this.ramps.get(r.id));
      budget = Math.min(budget, ramp.budget);
    }
    let sent = 0;
    try {
      // A replica that lost the lease mid-tick stops telling devices at the next batch.
      while (budget > 0 && !this.stopped && this.lease.isDriver()) {
        const batch = await this.repo.claimBatch(r.id, r.currentWave, Math.min(budget, NOTIFY_BATCH));
        if (batch.length === 0) return;
        budget -= batch.length;
        sent += batch.length;
        await this.assignBatch(
          r,
          batch.map((b) => b.deviceId),
        );
      }
    } finally {
      if (ramp) this.ramps.set(r.id, rampAfter(ramp, sent));
    }
  }

  /**
   * Longest gap between two ramp decisions that still counts as the ramp running: two ticks (one
   * late tick is no reason to slow down), between 1 s and the ramp's window.
   */
  private rampGapMs(): number {
    return Math.min(RAMP_WINDOW_MS, Math.max(1_000, 2 * this.config.rolloutTickSeconds * 1000));
  }

  /**
   * Assigns the version to claimed devices (devices feature: one upsert + publishMany) and records
   * the revisions. Each device is sent the build that fits its inventory now (it may have changed
   * since the rollout was planned); a device no build fits is skipped with the reason before it is
   * told anything, so it downloads nothing. One grouped query per batch decides the builds.
   */
  private async assignBatch(r: RolloutRow, claimed: string[], newState?: 'notified'): Promise<void> {
    const builds = await this.desired.selectBuilds(claimed, await this.artifactsOf(r));
    const refused = new Map<string, string[]>();
    const deviceIds: string[] = [];
    for (const id of claimed) {
      const b = builds.get(id);
      if (b && !b.ok) {
        const reason = `${b.code}: ${b.reason}`.slice(0, 500);
        const ids = refused.get(reason);
        if (ids) ids.push(id);
        else refused.set(reason, [id]);
      } else deviceIds.push(id);
    }
    if (refused.size > 0) {
      let count = 0;
      for (const [reason, ids] of refused) {
        await this.repo.markSkipped(r.id, ids, reason);
        count += ids.length;
      }
      await this.repo.insertEvents(undefined, r.id, [
        {
          type: 'devices-incompatible',
          wave: r.currentWave,
          message: `${count} devices fit no build of the version (skipped before notification)`,
          data: { count, reasons: Object.fromEntries([...refused].map(([reason, ids]) => [reason, ids.length])) },
        },
      ]);
    }
    if (deviceIds.length === 0) return;
    let assigned;
    try {
      assigned = await this.desired.assign(
        deviceIds.map((deviceId) => {
          const b = builds.get(deviceId);
          return {
            deviceId,
            model: r.model,
            version: r.version,
            rolloutId: r.id,
            action: r.action,
            timeoutSeconds: r.spec.timeoutSeconds,
            // No inventory yet: every build goes, and the agent chooses or refuses itself.
            variant: b?.ok ? b.variant : null,
          };
        }),
        // Before the publish, so the first report of a fast device finds its revision recorded.
        (result) => this.repo.recordRevisions(r.id, result, newState),
      );
    } catch (err) {
      // The devices stay `notified` in the database; they are re-published on the next tick.
      this.republish.add(r.id);
      throw err;
    }
    const known = new Set(assigned.map((a) => a.deviceId));
    const gone = deviceIds.filter((id) => !known.has(id));
    await this.repo.markSkipped(r.id, gone, 'device unknown or decommissioned');
  }

  /**
   * Re-publishes devices marked notified but not confirmed by any report: after a restart (the
   * crash may have come between marking and publishing) or after a failed publish. Assigning
   * again bumps the revision, which the agent treats as the same version told again.
   */
  private async republishNotified(r: RolloutRow): Promise<void> {
    this.republish.delete(r.id);
    let after = 0;
    let total = 0;
    for (;;) {
      const batch = await this.repo.devicesInStates(r.id, ['notified'], after, NOTIFY_BATCH);
      if (batch.length === 0) break;
      after = batch[batch.length - 1]!.ordinal;
      await this.assignBatch(
        r,
        batch.map((b) => b.deviceId),
      );
      total += batch.length;
    }
    if (total > 0)
      await this.repo.insertEvents(undefined, r.id, [
        { type: 'republished', wave: r.currentWave, message: `re-published ${total} notified devices that had not confirmed`, data: { count: total } },
      ]);
  }

  /** Download-only rollout after POST .../install: downloaded devices get the same version with action install. */
  private async installDownloaded(r: RolloutRow): Promise<void> {
    let after = 0;
    for (;;) {
      const batch = await this.repo.devicesInStates(r.id, ['downloaded'], after, NOTIFY_BATCH);
      if (batch.length === 0) return;
      after = batch[batch.length - 1]!.ordinal;
      await this.assignBatch(
        r,
        batch.map((b) => b.deviceId),
        'notified',
      );
    }
  }

  // ---------------------------------------------------------------- abort

  /**
   * Reverts an aborted (rolling-back) rollout in batches: every device that was told about the version gets
   * the version it ran before (see RolloutRepository.rollbackBatch), or is unassigned when it
   * ran none. Resumable: reverted devices are marked rolled-back as each batch completes.
   *
   * A device leaves the batch only with a real outcome: reverted (rolled-back), gone (unknown or
   * decommissioned) or a version that no longer exists (skipped, nothing to revert to). A
   * transient error (broker, database) leaves it as it is, so it comes back on the next tick; the
   * rollout stays rolling-back until rollbackBatch finds nobody left, and only then finishes.
   */
  private async rollbackStep(r: RolloutRow): Promise<void> {
    let reverted = 0;
    for (let i = 0; i < MAX_NOTIFY_PER_TICK / NOTIFY_BATCH && this.lease.isDriver(); i++) {
      const batch = await this.repo.rollbackBatch(r.id, r.version, r.model, NOTIFY_BATCH);
      if (batch.length === 0) {
        this.rollbackRetries.delete(r.id);
        await this.repo.finishAbort(r.id, await this.repo.countInState(r.id, 'rolled-back'));
        return;
      }
      const outcome = await this.revertBatch(r, batch);
      reverted += outcome.reverted;
      if (outcome.failed > 0) {
        await this.noteRollbackRetry(r, reverted, outcome.failed, outcome.error);
        return; // the failed devices are still first in membership order: retry them next tick
      }
    }
  }

  private async revertBatch(r: RolloutRow, batch: { deviceId: string; target: string | null }[]): Promise<{ reverted: number; failed: number; error: string }> {
    const byVersion = new Map<string, string[]>();
    const unassign: string[] = [];
    for (const b of batch) {
      if (b.target === null || b.target === r.version) unassign.push(b.deviceId);
      else {
        // Mutate in place: copying the array per device made a 5,000-device batch quadratic.
        const ids = byVersion.get(b.target);
        if (ids) ids.push(b.deviceId);
        else byVersion.set(b.target, [b.deviceId]);
      }
    }
    let reverted = 0;
    let failed = 0;
    let error = '';
    for (const [version, ids] of byVersion) {
      try {
        const assigned = await this.desired.assign(ids.map((deviceId) => ({ deviceId, model: r.model, version, rolloutId: null, action: 'install' as const })));
        const known = new Set(assigned.map((a) => a.deviceId));
        const done = ids.filter((id) => known.has(id));
        await this.repo.markRolledBack(
          r.id,
          done,
          done.map(() => `reverted to ${version}`),
        );
        await this.repo.markSkipped(
          r.id,
          ids.filter((id) => !known.has(id)),
          'device unknown or decommissioned',
        );
        reverted += done.length;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof DomainException && err.status === HttpStatus.NOT_FOUND) {
          // The version to go back to no longer exists: nothing can ever be reverted to it.
          await this.repo.markSkipped(r.id, ids, `rollback to ${version} impossible: ${message}`);
          continue;
        }
        this.logger.warn(`rollout ${r.id}: reverting ${ids.length} devices to ${version} failed (retried): ${message}`);
        failed += ids.length;
        error = message;
      }
    }
    if (unassign.length > 0) {
      try {
        await this.desired.unassign(unassign.map((deviceId) => ({ deviceId, model: r.model })));
        await this.repo.markRolledBack(
          r.id,
          unassign,
          unassign.map(() => 'no previous version: model unassigned'),
        );
        reverted += unassign.length;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.logger.warn(`rollout ${r.id}: unassigning ${unassign.length} devices failed (retried): ${message}`);
        failed += unassign.length;
        error = message;
      }
    }
    return { reverted, failed, error };
  }

  /**
   * Records that reverting failed and will be retried, with the numbers: on the first failure
   * and then at most once per ROLLBACK_RETRY_EVENT_MS, so a long outage does not flood the log.
   */
  private async noteRollbackRetry(r: RolloutRow, reverted: number, failed: number, error: string): Promise<void> {
    const now = Date.now();
    const state = this.rollbackRetries.get(r.id) ?? { attempts: 0, lastEventAt: 0 };
    state.attempts++;
    this.rollbackRetries.set(r.id, state);
    if (now - state.lastEventAt < ROLLBACK_RETRY_EVENT_MS) return;
    state.lastEventAt = now;
    await this.repo.insertEvents(undefined, r.id, [
      {
        type: 'rollback-retrying',
        wave: r.currentWave,
        message: `reverting ${failed} devices failed and is retried: ${error}`,
        data: { failed, reverted, attempts: state.attempts, error },
      },
    ]);
  }

  private async artifactsOf(r: RolloutRow): Promise<ArtifactRef[]> {
    const key = `${r.model}@${r.version}`;
    let refs = this.artifacts.get(key);
    if (!refs) {
      refs = await this.models.artifactRefs(r.model, r.version);
      this.artifacts.set(key, refs);
    }
    return refs;
  }
}
