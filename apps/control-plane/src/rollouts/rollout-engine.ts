import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy, Optional } from '@nestjs/common';
import { DesiredStateService } from '../devices/desired-state.service.js';
import { ReportIngestService } from '../devices/reports/report-ingest.service.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { ModelsService } from '../models/models.service.js';
import { HealthGateService } from '../telemetry/gates/health-gate.contract.js';
import { DriverLease } from './driver-lease.js';
import {
  type DecisionInput,
  type DeliveryInput,
  decide,
  maxInFlightOf,
  needsRollbackBatch,
  needsWave,
  NOTIFY_BATCH,
  type RolloutStep,
  type WaveInput,
} from './engine/decide.js';
import { EngineMemory } from './engine/engine-memory.js';
import { StepApplier, type StepOutcome } from './engine/step-applier.js';
import { RAMP_WINDOW_MS } from './planning/ramp.js';
import { RolloutPreparer } from './preparation/rollout-preparer.js';
import { RolloutRepository, type RolloutRow } from './rollout.repository.js';
import { RolloutReportFollower } from './rollout-report-follower.js';

const MIN_TICK_GAP_MS = 200;
/** A rollout's tick never takes more steps than this (it needs at most nine; a bug must not spin). */
const MAX_STEPS_PER_ROLLOUT = 16;

/** What one tick works on, phase after phase. */
interface TickContext {
  rollouts: RolloutRow[];
  /** A phase ended the tick early (the lease was lost, the replica stops, the rollouts could not be listed). */
  ended: boolean;
}

/**
 * Drives every active rollout from the database: applies device reports, times out and retries
 * devices, judges the current wave (success + bake + gates, or failure), starts the next wave
 * and notifies devices in batches. Runs on a periodic tick and wakes early when reports arrive.
 * Only the replica holding the driver lease does anything; all state is in the database, so any
 * replica can take over at any moment and continue exactly where the last one stopped.
 *
 * This class is the driver: per rollout it gathers what decide() needs, asks it for the next step
 * and hands the step to the StepApplier (database writes and publishing), until a step ends the
 * rollout's tick. Every decision is in engine/decide.ts.
 */
@Injectable()
export class RolloutEngine implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RolloutEngine');
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private again = false;
  private stopped = true;
  private lastTickAt = 0;
  private recoverAll = false;
  private readonly tickListeners: ((rolloutIds: string[]) => void)[] = [];
  private readonly memory = new EngineMemory();
  private readonly applier: StepApplier;

  /**
   * The phases of one tick, in order; each may end the tick (`ended`). Work that must happen
   * before the rollouts are driven goes before `driveAll`.
   */
  private readonly phases: readonly ((t: TickContext) => Promise<void>)[] = [
    // Before listing: a rollout prepared now is driven (started) in this same tick.
    async () => {
      await this.preparer.prepareWaiting();
    },
    (t) => this.listRollouts(t),
    (t) => this.recover(t),
    (t) => this.driveAll(t),
    (t) => this.announce(t),
  ];

  constructor(
    private readonly repo: RolloutRepository,
    private readonly lease: DriverLease,
    desired: DesiredStateService,
    models: ModelsService,
    private readonly reports: ReportIngestService,
    private readonly follower: RolloutReportFollower,
    private readonly preparer: RolloutPreparer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() gates?: HealthGateService,
  ) {
    this.applier = new StepApplier(repo, desired, models, gates, this.memory, { isDriver: () => lease.isDriver(), stopped: () => this.stopped }, this.logger);
  }

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
    const t: TickContext = { rollouts: [], ended: false };
    for (const phase of this.phases) {
      await phase(t);
      if (t.ended) return;
    }
  }

  // ---------------------------------------------------------------- tick phases

  private async listRollouts(t: TickContext): Promise<void> {
    try {
      t.rollouts = await this.repo.listDriven();
    } catch (err) {
      this.logger.error(`cannot list rollouts: ${String(err)}`);
      t.ended = true;
    }
  }

  /** After becoming the driver: publish every notified device again, and sweep reports at once. */
  private recover(t: TickContext): Promise<void> {
    if (this.recoverAll) {
      this.recoverAll = false;
      this.memory.lastSweep.clear();
      for (const r of t.rollouts) if (r.state === 'running' || r.state === 'paused') this.memory.republish.add(r.id);
    }
    return Promise.resolve();
  }

  private async driveAll(t: TickContext): Promise<void> {
    for (const rollout of t.rollouts) {
      if (this.stopped || !this.lease.isDriver()) {
        t.ended = true;
        return;
      }
      try {
        await this.drive(rollout);
      } catch (err) {
        this.logger.error(`rollout ${rollout.id}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  }

  private announce(t: TickContext): Promise<void> {
    const ids = t.rollouts.map((r) => r.id);
    for (const l of this.tickListeners) l(ids);
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- one rollout: gather → decide → apply

  private async drive(initial: RolloutRow): Promise<void> {
    const now = new Date();
    const r = initial;
    // A rollout that notifies no more devices has no ramp to pace.
    if (r.state === 'rolling-back' || r.state === 'completed' || r.state === 'cancelled') this.memory.ramps.delete(r.id);
    const active = r.state === 'scheduled' || r.state === 'running' || r.state === 'paused';
    const s: DecisionInput = {
      rollout: r,
      now,
      stage: 'start',
      nothingLeft: active && !r.spec.dynamic ? await this.repo.hasNothingLeft(r.id) : false,
      republish: false,
      lastJoinAt: this.memory.lastJoin.get(r.id),
      ramp: this.memory.ramps.get(r.id),
      config: { tickSeconds: this.config.rolloutTickSeconds, defaultMaxInFlight: this.config.rolloutMaxInFlight },
    };
    for (let i = 0; i < MAX_STEPS_PER_ROLLOUT; i++) {
      if (needsRollbackBatch(s)) {
        // A replica that lost the lease stops reverting at the next batch.
        if (!this.lease.isDriver()) return;
        const batch = await this.repo.rollbackBatch(r.id, r.version, r.model, NOTIFY_BATCH);
        s.rollback = { batches: s.rollback?.batches ?? 0, reverted: s.rollback?.reverted ?? 0, batch };
      }
      if (needsWave(s)) Object.assign(s, await this.gatherWave(s));
      s.republish = this.memory.republish.has(r.id);
      const step = decide(s);
      const outcome = await this.applier.apply(step, s.rollout, now);
      if (!(await this.advance(s, step, outcome))) return;
    }
    this.logger.warn(`rollout ${r.id}: tick ended after ${MAX_STEPS_PER_ROLLOUT} steps`);
  }

  /** Folds an applied step into the input of the next decision; false when the rollout's tick is over. */
  private async advance(s: DecisionInput, step: RolloutStep, outcome: StepOutcome): Promise<boolean> {
    const id = s.rollout.id;
    switch (step.kind) {
      case 'revert':
        // The failed devices are still first in membership order: they are retried next tick.
        if ((outcome.failed ?? 0) > 0) return false;
        s.rollback = { batches: (s.rollback?.batches ?? 0) + 1, reverted: (s.rollback?.reverted ?? 0) + (outcome.reverted ?? 0) };
        return true;
      case 'finish-rollback':
      case 'end-time':
      case 'notify':
      case 'wait':
        return false;
      case 'nothing-left':
        if (outcome.changed) return false;
        s.nothingLeft = false;
        return true;
      case 'sync':
        s.stage = 'synced';
        return true;
      case 'join':
        s.lastJoinAt = s.now.getTime();
        return true;
      case 'start-wave':
        if (step.op === 'start') {
          s.rollout = await this.repo.get(id);
          return s.rollout.state === 'running';
        }
        if (outcome.changed) s.rollout = await this.repo.get(id);
        s.stage = 'judged';
        return true;
      case 'mark-success':
        if (s.wave && outcome.successSince) s.wave = { ...s.wave, row: { ...s.wave.row, successSince: outcome.successSince } };
        return true;
      case 'evaluate-gates':
        if (s.wave && outcome.gateResults) s.wave = { ...s.wave, gateResults: outcome.gateResults, gatesEvaluatedAt: s.now.getTime() };
        return true;
      case 'note':
        s.stage = 'judged';
        return true;
      case 'install':
        // The install command moved devices to in flight and stamped them as notices: read the limits again.
        s.installSent = true;
        s.delivery = await this.gatherDelivery(s);
        return true;
      case 'pause':
      case 'roll-back':
      case 'complete':
        if (outcome.changed) s.rollout = await this.repo.get(id);
        s.stage = 'judged';
        return true;
    }
  }

  /** The current wave and what limits delivery, read after this tick's device bookkeeping. */
  private async gatherWave(s: DecisionInput): Promise<{ wave: WaveInput | null; delivery: DeliveryInput }> {
    const r = s.rollout;
    const waves = await this.repo.waves(r.id);
    const row = waves[r.currentWave];
    let wave: WaveInput | null = null;
    if (row) {
      const counts = (await this.repo.waveCounts(r.id, row.idx)).get(row.idx) ?? {};
      wave = {
        row,
        counts,
        upTo: waves.filter((w) => w.idx <= row.idx).map((w) => w.idx),
        gateResults: row.gateResults ?? [],
        gatesEvaluatedAt: this.memory.gatesEvaluatedAt.get(`${r.id}:${row.idx}`),
      };
    }
    return { wave, delivery: await this.gatherDelivery(s) };
  }

  private async gatherDelivery(s: DecisionInput): Promise<DeliveryInput> {
    const r = s.rollout;
    return {
      inFlight: maxInFlightOf(s) === undefined ? 0 : await this.repo.inFlightCount(r.id),
      ...(r.spec.ramp ? { rampCounts: await this.repo.rampCounts(r.id, RAMP_WINDOW_MS / 1000) } : {}),
    };
  }
}
