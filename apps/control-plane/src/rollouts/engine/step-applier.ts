import { HttpStatus, type Logger } from '@nestjs/common';
import { type ArtifactRef, TRANSIENT_FAILURE_CODES } from '@fleetline/protocol';
import type { DesiredStateService } from '../../devices/desired-state.service.js';
import { DomainException } from '../../infra/http/domain.exception.js';
import type { GateEvaluationInput, GateResult } from '../../telemetry/gates/health-gate.contract.js';
import { rampAfter } from '../planning/ramp.js';
import { desiredActionOfWave } from '../planning/shadow-wave.js';
import type { NewEvent, RolloutRepository, RolloutRow } from '../rollout.repository.js';
import { eventsOf } from '../rollout-report-follower.js';
import { NOTIFY_BATCH, type Note, type RevertTarget, type RolloutStep } from './decide.js';
import type { EngineMemory } from './engine-memory.js';

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

/** The rollout tables as the applier writes them; every state change goes through ROLLOUT_TRANSITIONS there. */
export type RolloutStore = Pick<
  RolloutRepository,
  | 'startWave'
  | 'transition'
  | 'cancelNothingLeft'
  | 'completeLastWave'
  | 'markSuccessSince'
  | 'saveGateResults'
  | 'syncReports'
  | 'scheduleRetries'
  | 'timeOut'
  | 'insertEvents'
  | 'joinNewDevices'
  | 'claimBatch'
  | 'devicesInStates'
  | 'recordRevisions'
  | 'markSkipped'
  | 'rollbackBatch'
  | 'markRolledBack'
  | 'countInState'
  | 'finishAbort'
>;

/** Desired state of devices (devices feature): which build fits, assign and publish, unassign. */
export type DesiredStatePublisher = Pick<DesiredStateService, 'selectBuilds' | 'assign' | 'unassign'>;

export interface ArtifactSource {
  artifactRefs(model: string, version: string): Promise<ArtifactRef[]>;
}

export interface GateEvaluator {
  evaluate(input: GateEvaluationInput): Promise<GateResult[]>;
}

/** Whether this replica may still tell devices (it holds the lease and is not shutting down). */
export interface DriverControl {
  isDriver(): boolean;
  stopped(): boolean;
}

/** What applying a step found out that the driver needs for the next decision of the tick. */
export interface StepOutcome {
  /** A compare-and-set on the rollout row won (state or wave changed). */
  changed: boolean;
  /** mark-success: when the success condition was first met, as stored. */
  successSince?: Date;
  /** evaluate-gates: the results just evaluated. */
  gateResults?: GateResult[];
  /** revert: devices reverted, and devices whose revert failed (retried on a later tick). */
  reverted?: number;
  failed?: number;
}

const UNCHANGED: StepOutcome = { changed: false };

/**
 * Performs the steps decide() chose: the database writes through the rollout store and the
 * publishing through the desired-state service. No decisions here beyond how to carry a step out
 * (batches, retries of failed publishes, de-duplicated notes).
 */
export class StepApplier {
  private readonly artifacts = new Map<string, ArtifactRef[]>();

  constructor(
    private readonly store: RolloutStore,
    private readonly desired: DesiredStatePublisher,
    private readonly models: ArtifactSource,
    private readonly gates: GateEvaluator | undefined,
    private readonly memory: EngineMemory,
    private readonly control: DriverControl,
    private readonly logger: Logger,
  ) {}

  async apply(step: RolloutStep, r: RolloutRow, now: Date): Promise<StepOutcome> {
    switch (step.kind) {
      case 'revert':
        return this.revert(r, step);
      case 'finish-rollback':
        this.memory.rollbackRetries.delete(r.id);
        await this.store.finishAbort(r.id, await this.store.countInState(r.id, 'rolled-back'));
        return { changed: true };
      case 'nothing-left':
        return { changed: await this.store.cancelNothingLeft(r.id) };
      case 'sync':
        await this.syncDevices(r, step.finished);
        if (step.republish) await this.republishNotified(r);
        return UNCHANGED;
      case 'start-wave':
        return { changed: await this.store.startWave(r.id, step.from, step.to, step.event, step.op) };
      case 'join':
        this.memory.lastJoin.set(r.id, now.getTime());
        await this.store.joinNewDevices(r, await this.artifactsOf(r));
        return UNCHANGED;
      case 'mark-success': {
        const successSince = await this.store.markSuccessSince(r.id, step.wave);
        await this.store.insertEvents(undefined, r.id, [step.event]);
        return { changed: false, successSince };
      }
      case 'evaluate-gates':
        return { changed: false, gateResults: await this.evaluateGates(r, step, now) };
      case 'pause':
        return { changed: await this.store.transition(r.id, 'halt', step.reason, step.event) };
      case 'roll-back':
        return { changed: await this.store.transition(r.id, 'roll-back', step.reason, step.event) };
      case 'complete':
        await this.store.completeLastWave(r.id, step.wave);
        return { changed: await this.store.transition(r.id, 'complete', null, step.event, { finished: true }) };
      case 'end-time':
        return { changed: await this.store.transition(r.id, 'end-time', 'end time reached', step.event, { finished: true }) };
      case 'note':
        this.noteOnce(r, step.note);
        return UNCHANGED;
      case 'install':
        await this.installDownloaded(r);
        return UNCHANGED;
      case 'notify':
        await this.notify(r, step);
        return UNCHANGED;
      case 'wait':
        if (step.note) this.noteOnce(r, step.note);
        return UNCHANGED;
    }
  }

  // ---------------------------------------------------------------- device bookkeeping

  /**
   * Device bookkeeping of one tick: the periodic sweep of reports the follower missed (with the
   * same events it records), retries, and timeouts. A finished rollout (completed at its success
   * threshold, or cancelled) tells no one and retries nothing, but devices it already told are
   * still installing: their reports are applied and silent ones time out, so every row ends terminal.
   */
  private async syncDevices(r: RolloutRow, finished: boolean): Promise<void> {
    const m = this.memory;
    const changed = m.due(m.lastSweep, r.id, REPORT_SWEEP_MS) ? await this.store.syncReports(r.id, r.model) : [];
    const events: NewEvent[] = eventsOf(changed.map((c) => ({ ...c, rolloutId: r.id, wave: r.currentWave }))).get(r.id) ?? [];
    if (!finished) {
      const retried = await this.store.scheduleRetries(r.id, TRANSIENT_FAILURE_CODES, r.spec.retries.max, r.spec.retries.backoffSeconds);
      if (retried > 0) {
        events.push({
          type: 'retries-scheduled',
          wave: r.currentWave,
          message: `${retried} devices with transient failures will be retried`,
          data: { count: retried, backoffSeconds: r.spec.retries.backoffSeconds, maxRetries: r.spec.retries.max },
        });
      }
    }
    const timeoutDue = m.due(m.lastTimeoutCheck, r.id, Math.min(TIMEOUT_CHECK_MS, r.spec.timeoutSeconds * 100));
    const timedOut = timeoutDue ? await this.store.timeOut(r.id, r.spec.timeoutSeconds) : 0;
    if (timedOut > 0)
      events.push({
        type: 'devices-timed-out',
        wave: r.currentWave,
        message: `${timedOut} devices timed out after ${r.spec.timeoutSeconds} s`,
        data: { count: timedOut, timeoutSeconds: r.spec.timeoutSeconds },
      });
    await this.store.insertEvents(undefined, r.id, events);
  }

  private noteOnce(r: RolloutRow, note: Note): void {
    const key = `${r.id}:${note.wave}:${note.kind}`;
    if (this.memory.noted.has(key)) return;
    this.memory.noted.add(key);
    void this.store
      .insertEvents(undefined, r.id, [{ type: note.kind, wave: note.wave, message: note.message, data: note.data }])
      .catch((err: unknown) => this.logger.warn(`event not recorded: ${String(err)}`));
  }

  // ---------------------------------------------------------------- gates

  private async evaluateGates(r: RolloutRow, step: Extract<RolloutStep, { kind: 'evaluate-gates' }>, now: Date): Promise<GateResult[]> {
    this.memory.gatesEvaluatedAt.set(`${r.id}:${step.wave}`, now.getTime());
    const results: GateResult[] = this.gates
      ? await this.gates.evaluate({
          model: r.model,
          candidateVersion: r.version,
          baselineVersion: r.baselineVersion,
          rolloutId: r.id,
          waves: step.waves,
          gates: step.gates,
          minSamples: step.minSamples,
          windowSeconds: step.windowSeconds,
          now,
        })
      : step.gates.map((g) => ({
          metric: g.metric,
          passed: null,
          value: null,
          baseline: null,
          threshold: null,
          samples: 0,
          baselineSamples: 0,
          reason: 'no telemetry health gate service in this deployment',
        }));
    await this.store.saveGateResults(r.id, step.wave, results);
    return results;
  }

  // ---------------------------------------------------------------- notifications

  private async notify(r: RolloutRow, step: Extract<RolloutStep, { kind: 'notify' }>): Promise<void> {
    let budget = step.budget;
    let sent = 0;
    try {
      // A replica that lost the lease mid-tick stops telling devices at the next batch.
      while (budget > 0 && !this.control.stopped() && this.control.isDriver()) {
        const batch = await this.store.claimBatch(r.id, r.currentWave, Math.min(budget, NOTIFY_BATCH));
        if (batch.length === 0) return;
        budget -= batch.length;
        sent += batch.length;
        await this.assignBatch(
          r,
          batch.map((b) => b.deviceId),
        );
      }
    } finally {
      if (step.ramp) this.memory.ramps.set(r.id, rampAfter(step.ramp, sent));
    }
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
        await this.store.markSkipped(r.id, ids, reason);
        count += ids.length;
      }
      await this.store.insertEvents(undefined, r.id, [
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
            // A shadow wave's devices stage the version and evaluate it beside their active one.
            ...desiredActionOfWave(r.action, r.spec.waves[r.currentWave]),
            timeoutSeconds: r.spec.timeoutSeconds,
            // No inventory yet: every build goes, and the agent chooses or refuses itself.
            variant: b?.ok ? b.variant : null,
          };
        }),
        // Before the publish, so the first report of a fast device finds its revision recorded.
        (result) => this.store.recordRevisions(r.id, result, newState),
      );
    } catch (err) {
      // The devices stay `notified` in the database; they are re-published on the next tick.
      this.memory.republish.add(r.id);
      throw err;
    }
    const known = new Set(assigned.map((a) => a.deviceId));
    const gone = deviceIds.filter((id) => !known.has(id));
    await this.store.markSkipped(r.id, gone, 'device unknown or decommissioned');
  }

  /**
   * Re-publishes devices marked notified but not confirmed by any report: after a restart (the
   * crash may have come between marking and publishing) or after a failed publish. Assigning
   * again bumps the revision, which the agent treats as the same version told again.
   */
  private async republishNotified(r: RolloutRow): Promise<void> {
    this.memory.republish.delete(r.id);
    let after = 0;
    let total = 0;
    for (;;) {
      const batch = await this.store.devicesInStates(r.id, ['notified'], after, NOTIFY_BATCH);
      if (batch.length === 0) break;
      after = batch[batch.length - 1]!.ordinal;
      await this.assignBatch(
        r,
        batch.map((b) => b.deviceId),
      );
      total += batch.length;
    }
    if (total > 0)
      await this.store.insertEvents(undefined, r.id, [
        { type: 'republished', wave: r.currentWave, message: `re-published ${total} notified devices that had not confirmed`, data: { count: total } },
      ]);
  }

  /** Download-only rollout after POST .../install: downloaded devices get the same version with action install. */
  private async installDownloaded(r: RolloutRow): Promise<void> {
    let after = 0;
    for (;;) {
      const batch = await this.store.devicesInStates(r.id, ['downloaded'], after, NOTIFY_BATCH);
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
   * Reverts one batch of an aborted (rolling-back) rollout: every device that was told about the
   * version gets the version it ran before (see RolloutRepository.rollbackBatch), or is unassigned
   * when it ran none. Resumable: reverted devices are marked rolled-back as the batch completes.
   * A transient error (broker, database) leaves a device as it is, so it comes back first in the
   * next batch; that is recorded (rollback-retrying) and the driver stops reverting for this tick.
   */
  private async revert(r: RolloutRow, step: Extract<RolloutStep, { kind: 'revert' }>): Promise<StepOutcome> {
    const outcome = await this.revertBatch(r, step.batch);
    if (outcome.failed > 0) await this.noteRollbackRetry(r, step.reverted + outcome.reverted, outcome.failed, outcome.error);
    return { changed: false, reverted: outcome.reverted, failed: outcome.failed };
  }

  private async revertBatch(r: RolloutRow, batch: readonly RevertTarget[]): Promise<{ reverted: number; failed: number; error: string }> {
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
        await this.store.markRolledBack(
          r.id,
          done,
          done.map(() => `reverted to ${version}`),
        );
        await this.store.markSkipped(
          r.id,
          ids.filter((id) => !known.has(id)),
          'device unknown or decommissioned',
        );
        reverted += done.length;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof DomainException && err.status === HttpStatus.NOT_FOUND) {
          // The version to go back to no longer exists: nothing can ever be reverted to it.
          await this.store.markSkipped(r.id, ids, `rollback to ${version} impossible: ${message}`);
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
        await this.store.markRolledBack(
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
    const state = this.memory.rollbackRetries.get(r.id) ?? { attempts: 0, lastEventAt: 0 };
    state.attempts++;
    this.memory.rollbackRetries.set(r.id, state);
    if (now - state.lastEventAt < ROLLBACK_RETRY_EVENT_MS) return;
    state.lastEventAt = now;
    await this.store.insertEvents(undefined, r.id, [
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
