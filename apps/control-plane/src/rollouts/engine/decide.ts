import type { GateResult, GateSpec } from '../../telemetry/gates/health-gate.contract.js';
import { gateVerdict } from '../planning/gate-verdict.js';
import { inMaintenanceWindow, nextWindowOpening } from '../planning/maintenance-window.js';
import { RAMP_WINDOW_MS, rampBudget, type RampDecision, type RampState } from '../planning/ramp.js';
import { assessWave, decideWave, type StateCounts, type WaveAssessment } from '../planning/wave-conditions.js';
import { waveSuccessAction } from '../planning/shadow-wave.js';
import type { NewEvent, RolloutRow, WaveRow } from '../rollout.repository.js';
import { canonicalFailureAction, type FailureAction } from '../rollout.types.js';

/** At most this many devices notified per rollout per tick, so one huge wave cannot starve the others. */
export const MAX_NOTIFY_PER_TICK = 20_000;
/** Health gates of a wave are evaluated at most this often. */
export const GATE_EVALUATION_MS = 5_000;
/** Dynamic rollouts look for newly matching devices every max(this, 4 ticks). */
export const DYNAMIC_CHECK_MS = 2_000;
/** Devices selected, assigned and published (or reverted) per batch. */
export const NOTIFY_BATCH = 5_000;
/** Revert batches per rolling-back rollout per tick (as many devices as a tick may notify). */
export const MAX_REVERT_BATCHES_PER_TICK = MAX_NOTIFY_PER_TICK / NOTIFY_BATCH;

/**
 * Where the driver is within one rollout's tick. `start`: only the rollout row is known (state
 * decisions: revert, follow, nothing left, start); `synced`: device bookkeeping is done and the
 * current wave may be judged; `judged`: the wave's verdict is applied, only delivery is left.
 * A tick judges a wave at most once, so a wave started in this tick is judged in the next one.
 */
export type TickStage = 'start' | 'synced' | 'judged';

/** The current wave as the driver read it after the bookkeeping of this tick. */
export interface WaveInput {
  row: WaveRow;
  counts: StateCounts;
  /** Indices of the waves up to the current one (the candidate cohort of its gates). */
  upTo: number[];
  /** Results to judge the gates on: evaluated in this tick, or the stored ones. */
  gateResults: GateResult[];
  /** When this driver last evaluated the wave's gates (ms since the epoch; undefined: never). */
  gatesEvaluatedAt?: number | undefined;
}

/** What delivery is limited by, read with the wave (a wave decision does not move devices). */
export interface DeliveryInput {
  /** Devices told and not finished; only read when an in-flight cap applies. */
  inFlight: number;
  /** The ramp's position and the notices of its last window; only read for a ramped rollout. */
  rampCounts?: { notifiedEver: number; recentNotices: number };
}

/** A rolling-back rollout in this tick: batches reverted so far, and the next batch once read. */
export interface RollbackInput {
  batches: number;
  /** Devices reverted by this tick's batches. */
  reverted: number;
  /** The next batch in membership order, with the version each goes back to (null: unassign); undefined until read. */
  batch?: RevertTarget[];
}

export interface RevertTarget {
  deviceId: string;
  target: string | null;
}

export interface DecisionInput {
  rollout: RolloutRow;
  now: Date;
  stage: TickStage;
  /** Every member is skipped (only probed for an active, non-dynamic rollout). */
  nothingLeft: boolean;
  /** Notified devices must be published again (new driver, or a publish failed). */
  republish: boolean;
  /** When this driver last looked for newly matching devices (ms since the epoch; undefined: never). */
  lastJoinAt?: number | undefined;
  /** The current wave; null when the rollout has no such wave; undefined until gathered (see needsWave). */
  wave?: WaveInput | null;
  delivery?: DeliveryInput;
  /** A rolling-back rollout's progress in this tick (see needsRollbackBatch). */
  rollback?: RollbackInput;
  /** The install command of a download-only rollout went out in this tick (POST .../install). */
  installSent?: boolean;
  /** The ramp's pace as this driver left it (memory only). */
  ramp?: RampState | undefined;
  config: {
    tickSeconds: number;
    /** ROLLOUT_MAX_IN_FLIGHT: the cap of a rollout without its own maxInFlight (0: none). */
    defaultMaxInFlight?: number | undefined;
  };
}

/** A note recorded once per rollout, wave and kind (the applier remembers which were recorded). */
export interface Note {
  wave: number;
  kind: string;
  message: string;
  data: Record<string, unknown>;
}

/** The one thing to do next for a rollout. */
export type RolloutStep =
  /** rolling-back: revert one batch of told devices (`reverted` earlier in this tick). */
  | { kind: 'revert'; batch: RevertTarget[]; reverted: number }
  /** rolling-back and nobody left to revert: rolled-back, or aborted when nothing was reverted (op finish-rollback). */
  | { kind: 'finish-rollback' }
  /** Every member is skipped: end it as cancelled (nothing-left). */
  | { kind: 'nothing-left' }
  /** Device bookkeeping: reports the follower missed, retries (not once finished), timeouts, re-publication. */
  | { kind: 'sync'; finished: boolean; republish: boolean }
  /** Start wave `to` if the rollout is still at wave `from` (`start` also moves scheduled → running). */
  | { kind: 'start-wave'; op: 'start' | 'next-wave'; from: number; to: number; event: NewEvent }
  /** Dynamic rollout: enrol newly matching devices into the last started wave. */
  | { kind: 'join' }
  /** The wave met its success condition for the first time: bake time runs from now. */
  | { kind: 'mark-success'; wave: number; event: NewEvent }
  /** Evaluate the wave's health gates now over the canaries of `waves` (and store the results). */
  | { kind: 'evaluate-gates'; wave: number; waves: number[]; gates: GateSpec[]; minSamples: number; windowSeconds: number }
  /** A failure threshold or a gate failed and the action says pause (op halt). */
  | { kind: 'pause'; reason: string; event: NewEvent }
  /** A failure threshold or a gate failed and the action says rollback (op roll-back). */
  | { kind: 'roll-back'; reason: string; event: NewEvent }
  /** The last wave succeeded and baked (op complete). */
  | { kind: 'complete'; wave: number; event: NewEvent }
  /** endAt is reached: nobody further is told (op end-time). */
  | { kind: 'end-time'; event: NewEvent }
  /** The wave holds for a reason worth one event; delivery goes on. */
  | { kind: 'note'; note: Note }
  /** After POST .../install (window open): tell the downloaded devices to install. */
  | { kind: 'install' }
  /** Tell up to `budget` pending devices of the started waves. */
  | { kind: 'notify'; budget: number; ramp?: RampDecision }
  /** Nothing to do until `until` (null: until something else changes), with a note when worth one. */
  | { kind: 'wait'; until: Date | null; reason: string; note?: Note };

type Gates = { kind: 'none' } | { kind: 'passed' | 'pending' | 'failed'; results: GateResult[]; summary: string };

/**
 * Decides the next step of one rollout from what the driver gathered. Pure: every branch the
 * engine takes lives here, and the driver calls it again after each step until it gets a step
 * that ends the rollout's tick (wait, notify, revert, end-time, nothing-left).
 */
export function decide(s: DecisionInput): RolloutStep {
  const r = s.rollout;
  if (s.stage === 'start') {
    if (r.state === 'rolling-back') return revert(s);
    // Finished with told devices still in flight: follow them (reports, timeouts), tell nobody.
    if (r.state === 'completed' || r.state === 'cancelled') return { kind: 'sync', finished: true, republish: false };
    if (r.state !== 'scheduled' && r.state !== 'running' && r.state !== 'paused') return { kind: 'wait', until: null, reason: r.state };
    // Stripped of every device (higher-priority rollouts took them all, or no build fits any): it
    // ends now rather than baking waves of nobody. A dynamic rollout stays: devices may still join.
    if (s.nothingLeft && !r.spec.dynamic) return { kind: 'nothing-left' };
    if (r.state === 'scheduled') {
      if (r.startAt.getTime() > s.now.getTime()) return { kind: 'wait', until: r.startAt, reason: 'start time not reached' };
      return {
        kind: 'start-wave',
        op: 'start',
        from: -1,
        to: 0,
        event: { type: 'wave-started', wave: 0, message: 'rollout started: wave 1 begins', data: { reason: 'start time reached' } },
      };
    }
    return { kind: 'sync', finished: false, republish: s.republish };
  }
  if (r.state !== 'running') return { kind: 'wait', until: null, reason: r.state };
  if (s.stage === 'synced') {
    if (endReached(s)) {
      return { kind: 'end-time', event: { type: 'completed', message: 'end time reached: no further devices are told' } };
    }
    if (joinDue(s)) return { kind: 'join' };
    if (s.wave === undefined) throw new Error(`rollout ${r.id}: the current wave was not gathered before deciding on it`);
    const step = s.wave === null ? undefined : judgeWave(s, s.wave);
    if (step) return step;
  }
  return deliver(s);
}

/**
 * Abort: every told device is reverted in batches, resumably; a device leaves the batch only with
 * a real outcome (reverted, gone, or nothing to revert to), so the abort finishes once a batch
 * comes back empty. A tick reverts at most MAX_REVERT_BATCHES_PER_TICK batches.
 */
function revert(s: DecisionInput): RolloutStep {
  const rollback = s.rollback ?? { batches: 0, reverted: 0 };
  if (rollback.batches >= MAX_REVERT_BATCHES_PER_TICK) return { kind: 'wait', until: null, reason: 'revert batches of this tick done' };
  if (!rollback.batch) throw new Error(`rollout ${s.rollout.id}: the next revert batch was not read before deciding on it`);
  if (rollback.batch.length === 0) return { kind: 'finish-rollback' };
  return { kind: 'revert', batch: rollback.batch, reverted: rollback.reverted };
}

/** True when the driver must read the next revert batch before calling decide. */
export function needsRollbackBatch(s: DecisionInput): boolean {
  const rollback = s.rollback ?? { batches: 0, reverted: 0 };
  return s.rollout.state === 'rolling-back' && s.stage === 'start' && rollback.batch === undefined && rollback.batches < MAX_REVERT_BATCHES_PER_TICK;
}

/** True when the driver must read the current wave (and delivery limits) before calling decide. */
export function needsWave(s: DecisionInput): boolean {
  return s.rollout.state === 'running' && s.stage === 'synced' && s.wave === undefined && !endReached(s) && !joinDue(s);
}

function endReached(s: DecisionInput): boolean {
  return s.rollout.endAt !== null && s.rollout.endAt.getTime() <= s.now.getTime();
}

function joinDue(s: DecisionInput): boolean {
  if (!s.rollout.spec.dynamic) return false;
  return s.now.getTime() - (s.lastJoinAt ?? 0) >= Math.max(DYNAMIC_CHECK_MS, 4 * s.config.tickSeconds * 1000);
}

/** The wave's verdict, or undefined when the wave holds without anything to record. */
function judgeWave(s: DecisionInput, w: WaveInput): RolloutStep | undefined {
  const r = s.rollout;
  const wave = w.row;
  const assessment = assessWave(w.counts, wave.spec.successPercent, wave.spec.failure, waveSuccessAction(r.action, wave.spec), wave.acceptedFailures);
  if (assessment.successMet && !wave.successSince && !assessment.failureMet) {
    return {
      kind: 'mark-success',
      wave: wave.idx,
      event: {
        type: 'wave-succeeded',
        wave: wave.idx,
        message: `wave ${wave.idx + 1} met its success condition: ${assessment.succeeded}/${assessment.members} (${assessment.successPercent}% >= ${wave.spec.successPercent}%); baking ${wave.spec.bakeSeconds} s`,
        data: { ...assessment, requiredPercent: wave.spec.successPercent, bakeSeconds: wave.spec.bakeSeconds },
      },
    };
  }
  const decision = decideWave(assessment, wave.spec.bakeSeconds, wave.successSince, s.now);
  if (decision.kind === 'fail') {
    const f = wave.spec.failure;
    const message = `failure condition met in wave ${wave.idx + 1}: ${assessment.failed} failed of ${assessment.executed} executed (${assessment.failurePercent}%; threshold ${f?.percent !== undefined ? `${f.percent}%` : `${f?.count} devices`}, minExecuted ${f?.minExecuted})`;
    // Specs stored before one vocabulary may still say 'abort'.
    return onFailure(r, canonicalFailureAction(r.spec.onFailure), message, { ...assessment, failure: f, acceptedFailures: wave.acceptedFailures });
  }
  if (gatesDue(s, w, assessment)) {
    const { gates, minSamples, windowSeconds } = wave.spec;
    return { kind: 'evaluate-gates', wave: wave.idx, waves: w.upTo, gates, minSamples, windowSeconds };
  }
  const gates = judgeGates(w, s.now);
  if (gates.kind === 'failed') {
    return onFailure(r, canonicalFailureAction(wave.spec.onGateFailure), `health gates failed in wave ${wave.idx + 1}: ${gates.summary}`, {
      gates: gates.results,
      ...assessment,
    });
  }
  if (decision.kind !== 'advance') {
    if (decision.kind === 'wait' && assessment.pending === 0 && assessment.inFlight === 0 && assessment.members > 0) {
      return note(
        wave.idx,
        'stalled',
        `wave ${wave.idx + 1} finished without meeting its success condition (${assessment.successPercent}% < ${wave.spec.successPercent}%): retry or advance manually`,
        assessment,
      );
    }
    return undefined;
  }
  if (gates.kind === 'pending') {
    return note(wave.idx, 'gates-pending', `wave ${wave.idx + 1} waits for its health gates: ${gates.summary}`, { gates: gates.results });
  }
  if (wave.idx >= r.spec.waves.length - 1) {
    if (r.action === 'download-only') {
      return note(wave.idx, 'awaiting-install', 'every wave downloaded the version; devices install on POST .../install', assessment);
    }
    if (r.spec.dynamic) {
      return note(
        wave.idx,
        'all-waves-done',
        'every wave succeeded; the dynamic rollout keeps enrolling newly matching devices until its end time or a cancel',
        assessment,
      );
    }
    return {
      kind: 'complete',
      wave: wave.idx,
      event: { type: 'completed', wave: wave.idx, message: `rollout completed: last wave ${wave.idx + 1} succeeded and baked`, data: { ...assessment } },
    };
  }
  if (wave.spec.manualApproval) {
    return note(
      wave.idx,
      'awaiting-approval',
      `wave ${wave.idx + 1} succeeded and baked; wave ${wave.idx + 2} waits for approval (POST .../advance)`,
      assessment,
    );
  }
  return {
    kind: 'start-wave',
    op: 'next-wave',
    from: wave.idx,
    to: wave.idx + 1,
    event: {
      type: 'wave-started',
      wave: wave.idx + 1,
      message: `wave ${wave.idx + 1} succeeded (${assessment.successPercent}% >= ${wave.spec.successPercent}%) and baked ${wave.spec.bakeSeconds} s: wave ${wave.idx + 2} begins`,
      data: { previous: assessment, gates: wave.gateResults },
    },
  };
}

function onFailure(r: RolloutRow, action: FailureAction, message: string, data: Record<string, unknown>): RolloutStep {
  if (action === 'pause') return { kind: 'pause', reason: message, event: { type: 'paused', wave: r.currentWave, message: `paused: ${message}`, data } };
  return { kind: 'roll-back', reason: message, event: { type: 'aborted', wave: r.currentWave, message: `aborting and rolling back: ${message}`, data } };
}

/** Gates are evaluated once a device of the wave succeeded, at most every GATE_EVALUATION_MS. */
function gatesDue(s: DecisionInput, w: WaveInput, assessment: WaveAssessment): boolean {
  if (w.row.spec.gates.length === 0 || w.row.gatesOverridden || assessment.succeeded === 0) return false;
  return s.now.getTime() - (w.gatesEvaluatedAt ?? 0) >= GATE_EVALUATION_MS;
}

function judgeGates(w: WaveInput, now: Date): Gates {
  const wave = w.row;
  if (wave.spec.gates.length === 0 || wave.gatesOverridden) return { kind: 'none' };
  const results = w.gateResults;
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

function note(wave: number, kind: string, message: string, data: object): RolloutStep {
  return { kind: 'note', note: { wave, kind, message, data: { ...data } } };
}

/** Delivery of a running rollout whose wave verdict is applied (or holds without a step). */
function deliver(s: DecisionInput): RolloutStep {
  const r = s.rollout;
  const windowOpen = inMaintenanceWindow(r.spec.maintenanceWindows, s.now);
  // Before the budget: devices told to install count as in flight and as notices of the ramp.
  if (r.installRequestedAt !== null && windowOpen && !s.installSent) return { kind: 'install' };
  // Outside maintenance windows nobody is told to install; a download-only rollout may still download.
  if (!windowOpen && r.action === 'install') {
    const opens = nextWindowOpening(r.spec.maintenanceWindows, s.now);
    const at = opens?.toISOString() ?? 'never';
    return {
      kind: 'wait',
      until: opens,
      reason: 'outside maintenance windows',
      note: { wave: r.currentWave, kind: `window-closed:${at}`, message: `outside maintenance windows; next opens ${at}`, data: { nextOpening: opens } },
    };
  }
  const delivery = s.delivery ?? { inFlight: 0 };
  let budget = MAX_NOTIFY_PER_TICK;
  // The rollout's own cap, else the replica's default (ROLLOUT_MAX_IN_FLIGHT): a wave is told as
  // fast as its devices finish, not all at once.
  const maxInFlight = maxInFlightOf(s);
  if (maxInFlight !== undefined) budget = Math.min(budget, maxInFlight - delivery.inFlight);
  // Decided on every tick the rollout could notify, even when the in-flight cap leaves nothing:
  // what is not spent is not saved up (no burst once the cap, a closed window or a pause lifts).
  let ramp: RampDecision | undefined;
  if (r.spec.ramp) {
    const counts = delivery.rampCounts ?? { notifiedEver: 0, recentNotices: 0 };
    ramp = rampBudget(r.spec.ramp, { now: s.now.getTime(), ...counts, maxGapMs: rampGapMs(s.config.tickSeconds) }, s.ramp);
    budget = Math.min(budget, ramp.budget);
  }
  return { kind: 'notify', budget, ...(ramp ? { ramp } : {}) };
}

/** The in-flight cap of the rollout: its own, else the replica's default; undefined for none. */
export function maxInFlightOf(s: Pick<DecisionInput, 'rollout' | 'config'>): number | undefined {
  return s.rollout.spec.maxInFlight ?? (s.config.defaultMaxInFlight || undefined);
}

/**
 * Longest gap between two ramp decisions that still counts as the ramp running: two ticks (one
 * late tick is no reason to slow down), between 1 s and the ramp's window.
 */
export function rampGapMs(tickSeconds: number): number {
  return Math.min(RAMP_WINDOW_MS, Math.max(1_000, 2 * tickSeconds * 1000));
}
