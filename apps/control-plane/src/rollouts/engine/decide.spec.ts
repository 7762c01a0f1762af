import { describe, expect, it } from '@jest/globals';
import type { GateResult } from '../../telemetry/gates/health-gate.contract.js';
import type { StateCounts } from '../planning/wave-conditions.js';
import type { RolloutRow, WaveRow } from '../rollout.repository.js';
import type { RolloutSpec, WaveSpec } from '../rollout.types.js';
import {
  type DecisionInput,
  decide,
  MAX_NOTIFY_PER_TICK,
  MAX_REVERT_BATCHES_PER_TICK,
  needsRollbackBatch,
  needsWave,
  type RolloutStep,
  type TickStage,
} from './decide.js';

const NOW = new Date('2026-12-01T12:00:00Z');
const minutesAgo = (m: number): Date => new Date(NOW.getTime() - m * 60_000);

function waveSpec(over: Partial<WaveSpec> = {}): WaveSpec {
  return {
    percent: 10,
    bakeSeconds: 0,
    successPercent: 100,
    manualApproval: false,
    gates: [],
    minSamples: 10,
    windowSeconds: 300,
    onGateFailure: 'pause',
    ...over,
  };
}

function rollout(over: Partial<Omit<RolloutRow, 'spec'>> & { spec?: Partial<RolloutSpec> } = {}): RolloutRow {
  const { spec, ...rest } = over;
  return {
    id: 'r1',
    model: 'detector',
    version: '2.0.0',
    state: 'running',
    stateReason: null,
    action: 'install',
    priority: 0,
    spec: {
      target: {},
      waves: [waveSpec(), waveSpec({ percent: 100 })],
      onFailure: 'pause',
      maintenanceWindows: [],
      timeoutSeconds: 600,
      retries: { max: 0, backoffSeconds: 30 },
      dynamic: false,
      coverAll: true,
      ...spec,
    },
    baselineVersion: '1.0.0',
    targetCount: 100,
    skippedCount: 0,
    currentWave: 0,
    startAt: minutesAgo(60),
    endAt: null,
    startedAt: minutesAgo(60),
    finishedAt: null,
    installRequestedAt: null,
    createdBy: null,
    createdAt: minutesAgo(61),
    updatedAt: minutesAgo(1),
    ...rest,
  };
}

function waveRow(over: Partial<WaveRow> = {}): WaveRow {
  return {
    idx: 0,
    size: 10,
    spec: waveSpec(),
    startedAt: minutesAgo(30),
    successSince: null,
    finishedAt: null,
    acceptedFailures: 0,
    gatesOverridden: false,
    gateResults: null,
    gatesEvaluatedAt: null,
    ...over,
  };
}

interface Case {
  r?: RolloutRow;
  stage?: TickStage;
  wave?: WaveRow | null;
  counts?: StateCounts;
  gateResults?: GateResult[];
  gatesEvaluatedAt?: number;
  inFlight?: number;
  extra?: Partial<DecisionInput>;
}

function input(c: Case = {}): DecisionInput {
  const r = c.r ?? rollout();
  const wave = c.wave === undefined ? waveRow() : c.wave;
  return {
    rollout: r,
    now: NOW,
    stage: c.stage ?? 'synced',
    nothingLeft: false,
    republish: false,
    wave:
      wave === null
        ? null
        : { row: wave, counts: c.counts ?? { pending: 10 }, upTo: [0], gateResults: c.gateResults ?? [], gatesEvaluatedAt: c.gatesEvaluatedAt },
    delivery: { inFlight: c.inFlight ?? 0 },
    config: { tickSeconds: 1, defaultMaxInFlight: 0 },
    ...c.extra,
  };
}

function step<K extends RolloutStep['kind']>(s: RolloutStep, kind: K): Extract<RolloutStep, { kind: K }> {
  expect(s.kind).toBe(kind);
  return s as Extract<RolloutStep, { kind: K }>;
}

const gate = (passed: boolean | null, variant?: string): GateResult => ({
  metric: 'latency_p95',
  passed,
  value: 10,
  baseline: 10,
  threshold: 12,
  samples: 100,
  baselineSamples: 100,
  reason: passed === null ? 'too few samples' : 'ratio 1.0',
  ...(variant === undefined ? {} : { variant }),
});

describe('decide: the state of the rollout', () => {
  it('reverts a rolling-back rollout batch by batch, then finishes the abort', () => {
    const rollingBack = rollout({ state: 'rolling-back' });
    const batch = [
      { deviceId: 'd1', target: '1.0.0' },
      { deviceId: 'd2', target: null },
    ];
    const fresh = input({ r: rollingBack, stage: 'start', extra: { rollback: undefined } });
    expect(needsRollbackBatch(fresh)).toBe(true);
    expect(() => decide(fresh)).toThrow('revert batch was not read');
    expect(decide({ ...fresh, rollback: { batches: 0, reverted: 0, batch } })).toEqual({ kind: 'revert', batch, reverted: 0 });
    expect(decide({ ...fresh, rollback: { batches: 2, reverted: 9_000, batch } })).toEqual({ kind: 'revert', batch, reverted: 9_000 });
    expect(decide({ ...fresh, rollback: { batches: 1, reverted: 5_000, batch: [] } })).toEqual({ kind: 'finish-rollback' });
  });

  it('reverts at most MAX_REVERT_BATCHES_PER_TICK batches per tick', () => {
    const done = input({
      r: rollout({ state: 'rolling-back' }),
      stage: 'start',
      extra: { rollback: { batches: MAX_REVERT_BATCHES_PER_TICK, reverted: 20_000 } },
    });
    expect(needsRollbackBatch(done)).toBe(false);
    expect(decide(done).kind).toBe('wait');
    expect(needsRollbackBatch(input({ stage: 'start' }))).toBe(false);
  });

  it('follows the in-flight devices of a finished rollout, without retries or re-publication, then waits', () => {
    for (const state of ['completed', 'cancelled'] as const) {
      expect(decide(input({ r: rollout({ state }), stage: 'start', extra: { republish: true } }))).toEqual({ kind: 'sync', finished: true, republish: false });
      expect(decide(input({ r: rollout({ state }), stage: 'synced' })).kind).toBe('wait');
    }
  });

  it('cancels an active rollout with nothing left, unless it is dynamic', () => {
    for (const state of ['scheduled', 'running', 'paused'] as const) {
      expect(decide(input({ r: rollout({ state }), stage: 'start', extra: { nothingLeft: true } }))).toEqual({ kind: 'nothing-left' });
    }
    const dynamic = rollout({ spec: { dynamic: true } });
    expect(decide(input({ r: dynamic, stage: 'start', extra: { nothingLeft: true } })).kind).toBe('sync');
  });

  it('waits for the start time of a scheduled rollout, then starts wave 1', () => {
    const later = new Date(NOW.getTime() + 60_000);
    expect(step(decide(input({ r: rollout({ state: 'scheduled', startAt: later }), stage: 'start' })), 'wait').until).toEqual(later);
    const start = step(decide(input({ r: rollout({ state: 'scheduled', startAt: NOW }), stage: 'start' })), 'start-wave');
    expect(start).toMatchObject({ op: 'start', from: -1, to: 0, event: { type: 'wave-started', wave: 0 } });
  });

  it('does the device bookkeeping of an active rollout first, re-publishing when asked', () => {
    expect(decide(input({ stage: 'start' }))).toEqual({ kind: 'sync', finished: false, republish: false });
    expect(decide(input({ r: rollout({ state: 'paused' }), stage: 'start', extra: { republish: true } }))).toEqual({
      kind: 'sync',
      finished: false,
      republish: true,
    });
  });

  it('waits while paused (after the bookkeeping) and after a step moved the rollout out of running', () => {
    expect(step(decide(input({ r: rollout({ state: 'paused' }) })), 'wait').reason).toBe('paused');
    expect(decide(input({ r: rollout({ state: 'rolling-back' }), stage: 'judged' })).kind).toBe('wait');
    expect(decide(input({ r: rollout({ state: 'completed' }), stage: 'judged' })).kind).toBe('wait');
  });

  it('completes a running rollout at its end time, before judging the wave', () => {
    const s = input({ r: rollout({ endAt: NOW }), counts: { failed: 10 }, wave: waveRow({ spec: waveSpec({ failure: { count: 1, minExecuted: 1 } }) }) });
    expect(step(decide(s), 'end-time').event).toMatchObject({ type: 'completed', message: 'end time reached: no further devices are told' });
    expect(needsWave({ ...s, wave: undefined })).toBe(false);
    expect(decide(input({ r: rollout({ endAt: new Date(NOW.getTime() + 1) }) })).kind).toBe('notify');
  });
});

describe('decide: dynamic membership', () => {
  const dynamic = rollout({ spec: { dynamic: true } });

  it('looks for newly matching devices every max(2 s, 4 ticks), before reading the wave', () => {
    const s = input({ r: dynamic, wave: undefined, extra: { wave: undefined } });
    expect(decide(s)).toEqual({ kind: 'join' });
    expect(needsWave(s)).toBe(false);
    const justJoined = { ...s, lastJoinAt: NOW.getTime() - 3_999 };
    expect(needsWave(justJoined)).toBe(true);
    expect(decide({ ...justJoined, lastJoinAt: NOW.getTime() - 4_000 })).toEqual({ kind: 'join' });
    expect(decide(input({ r: dynamic, extra: { lastJoinAt: NOW.getTime() - 1_000, config: { tickSeconds: 0.1 } } })).kind).toBe('notify');
    expect(decide(input({ r: dynamic, extra: { lastJoinAt: NOW.getTime() - 2_000, config: { tickSeconds: 0.1 } } })).kind).toBe('join');
  });

  it('keeps enrolling after its last wave instead of completing', () => {
    const last = waveRow({ idx: 1, spec: waveSpec({ percent: 100 }), successSince: minutesAgo(5) });
    const s = input({ r: rollout({ spec: { dynamic: true }, currentWave: 1 }), wave: last, counts: { committed: 10 }, extra: { lastJoinAt: NOW.getTime() } });
    expect(step(decide(s), 'note').note.kind).toBe('all-waves-done');
  });

  it('refuses to decide on a wave that was not read', () => {
    expect(() => decide(input({ extra: { wave: undefined } }))).toThrow('not gathered');
    expect(needsWave(input({ extra: { wave: undefined } }))).toBe(true);
  });
});

describe('decide: the current wave', () => {
  it('marks the success condition the first time it is met (bake time runs from then)', () => {
    const mark = step(decide(input({ counts: { committed: 10 } })), 'mark-success');
    expect(mark).toMatchObject({ wave: 0, event: { type: 'wave-succeeded', wave: 0 } });
    expect(mark.event.message).toContain('met its success condition: 10/10');
  });

  it('does not mark success when the failure condition is met too, and pauses (onFailure pause)', () => {
    const wave = waveRow({ spec: waveSpec({ successPercent: 50, failure: { percent: 10, minExecuted: 1 } }) });
    const pause = step(decide(input({ wave, counts: { committed: 8, failed: 2 } })), 'pause');
    expect(pause.reason).toContain('failure condition met in wave 1: 2 failed of 10 executed (20%; threshold 10%, minExecuted 1)');
    expect(pause.event).toMatchObject({ type: 'paused', wave: 0, data: { failed: 2, acceptedFailures: 0 } });
  });

  it('rolls back on failure when onFailure says rollback (or the legacy abort)', () => {
    const wave = waveRow({ spec: waveSpec({ failure: { count: 1, minExecuted: 1 } }) });
    for (const onFailure of ['rollback', 'abort'] as const) {
      const r = rollout({ spec: { onFailure: onFailure as RolloutSpec['onFailure'] } });
      const back = step(decide(input({ r, wave, counts: { failed: 1, pending: 9 } })), 'roll-back');
      expect(back.event).toMatchObject({ type: 'aborted', wave: 0 });
      expect(back.event.message).toMatch(/^aborting and rolling back: failure condition met/);
    }
  });

  it('counts only failures beyond the accepted ones (resume)', () => {
    const wave = waveRow({ acceptedFailures: 2, spec: waveSpec({ failure: { count: 1, minExecuted: 1 } }) });
    expect(decide(input({ wave, counts: { failed: 2, pending: 8 } })).kind).toBe('notify');
    expect(decide(input({ wave, counts: { failed: 3, pending: 7 } })).kind).toBe('pause');
  });

  it('bakes after success: notifies meanwhile, advances once the bake time passed', () => {
    const baking = waveRow({ successSince: minutesAgo(1), spec: waveSpec({ bakeSeconds: 600 }) });
    expect(decide(input({ wave: baking, counts: { committed: 10 } })).kind).toBe('notify');
    const baked = waveRow({ successSince: minutesAgo(11), spec: waveSpec({ bakeSeconds: 600 }) });
    const next = step(decide(input({ wave: baked, counts: { committed: 10 } })), 'start-wave');
    expect(next).toMatchObject({ op: 'next-wave', from: 0, to: 1, event: { type: 'wave-started', wave: 1 } });
  });

  it('waits for the success condition; notes a wave that finished without meeting it', () => {
    expect(decide(input({ counts: { committed: 5, installing: 5 } })).kind).toBe('notify');
    const stalled = step(decide(input({ counts: { committed: 5, failed: 5 } })), 'note');
    expect(stalled.note).toMatchObject({ wave: 0, kind: 'stalled' });
    expect(stalled.note.message).toContain('retry or advance manually');
  });

  it('holds the next wave for manual approval', () => {
    const wave = waveRow({ successSince: minutesAgo(1), spec: waveSpec({ manualApproval: true }) });
    expect(step(decide(input({ wave, counts: { committed: 10 } })), 'note').note.kind).toBe('awaiting-approval');
  });

  it('completes after the last wave succeeded and baked', () => {
    const last = waveRow({ idx: 1, successSince: minutesAgo(1), spec: waveSpec({ percent: 100 }) });
    const done = step(decide(input({ r: rollout({ currentWave: 1 }), wave: last, counts: { committed: 90 } })), 'complete');
    expect(done).toMatchObject({ wave: 1, event: { type: 'completed', wave: 1, message: 'rollout completed: last wave 2 succeeded and baked' } });
  });

  it('a download-only rollout waits for the install command after its last wave', () => {
    const last = waveRow({ idx: 1, successSince: minutesAgo(1), spec: waveSpec({ percent: 100 }) });
    const r = rollout({ currentWave: 1, action: 'download-only' });
    expect(step(decide(input({ r, wave: last, counts: { downloaded: 90 } })), 'note').note.kind).toBe('awaiting-install');
  });

  it('goes on to delivery when the rollout has no such wave', () => {
    expect(decide(input({ wave: null })).kind).toBe('notify');
  });
});

describe('decide: health gates', () => {
  const gated = (over: Partial<WaveRow> = {}): WaveRow =>
    waveRow({ successSince: minutesAgo(1), spec: waveSpec({ gates: [{ metric: 'latency_p95', maxRatio: 1.2 }], windowSeconds: 300 }), ...over });

  it('evaluates the gates once a device succeeded, at most every 5 s', () => {
    expect(decide(input({ wave: gated(), counts: { committed: 1, pending: 9 } }))).toEqual({
      kind: 'evaluate-gates',
      wave: 0,
      waves: [0],
      gates: [{ metric: 'latency_p95', maxRatio: 1.2 }],
      minSamples: 10,
      windowSeconds: 300,
    });
    expect(decide(input({ wave: gated(), counts: { pending: 10 } })).kind).toBe('notify');
    expect(decide(input({ wave: gated(), counts: { committed: 1, pending: 9 }, gatesEvaluatedAt: NOW.getTime() - 4_999 })).kind).toBe('notify');
    expect(decide(input({ wave: gated(), counts: { committed: 10 }, gatesEvaluatedAt: NOW.getTime() - 5_000 })).kind).toBe('evaluate-gates');
  });

  it('judges the failure condition before evaluating gates', () => {
    const wave = gated({ spec: { ...gated().spec, failure: { count: 1, minExecuted: 1 } } });
    expect(decide(input({ wave, counts: { committed: 9, failed: 1 } })).kind).toBe('pause');
  });

  it('advances when every gate passed', () => {
    const s = input({ wave: gated(), counts: { committed: 10 }, gateResults: [gate(true)], gatesEvaluatedAt: NOW.getTime() });
    expect(decide(s).kind).toBe('start-wave');
  });

  it('holds while the gates are undecided, with a note', () => {
    const s = input({ wave: gated(), counts: { committed: 10 }, gateResults: [gate(null)], gatesEvaluatedAt: NOW.getTime() });
    const held = step(decide(s), 'note');
    expect(held.note).toMatchObject({ kind: 'gates-pending', data: { gates: [gate(null)] } });
    expect(held.note.message).toContain('latency_p95=10 (undecided: too few samples)');
    const none = step(decide({ ...s, wave: { ...s.wave!, gateResults: [] } }), 'note');
    expect(none.note.message).toContain('no samples yet');
  });

  it('an undecided build holds the wave only for the first gate window', () => {
    const results = [gate(true), gate(null, 'npu-int8')];
    const young = input({ wave: gated({ startedAt: minutesAgo(4) }), counts: { committed: 10 }, gateResults: results, gatesEvaluatedAt: NOW.getTime() });
    expect(decide(young).kind).toBe('note');
    const old = input({ wave: gated({ startedAt: minutesAgo(5) }), counts: { committed: 10 }, gateResults: results, gatesEvaluatedAt: NOW.getTime() });
    expect(decide(old).kind).toBe('start-wave');
  });

  it('a failed gate does onGateFailure (pause or rollback), even while the wave still bakes', () => {
    const baking = (onGateFailure: 'pause' | 'rollback'): WaveRow => gated({ spec: { ...gated().spec, bakeSeconds: 3600, onGateFailure } });
    const paused = step(
      decide(input({ wave: baking('pause'), counts: { committed: 10 }, gateResults: [gate(false)], gatesEvaluatedAt: NOW.getTime() })),
      'pause',
    );
    expect(paused.reason).toContain('health gates failed in wave 1: latency_p95=10 (breached');
    expect(paused.event.data).toMatchObject({ gates: [gate(false)], succeeded: 10 });
    const back = decide(input({ wave: baking('rollback'), counts: { committed: 10 }, gateResults: [gate(false, 'cpu')], gatesEvaluatedAt: NOW.getTime() }));
    expect(back.kind).toBe('roll-back');
  });

  it('ignores the gates of a wave whose gates an operator overrode', () => {
    const s = input({ wave: gated({ gatesOverridden: true }), counts: { committed: 10 }, gateResults: [gate(false)] });
    expect(decide(s).kind).toBe('start-wave');
  });
});

describe('decide: delivery', () => {
  it('notifies up to the per-tick maximum without caps', () => {
    expect(decide(input({ stage: 'judged' }))).toEqual({ kind: 'notify', budget: MAX_NOTIFY_PER_TICK });
  });

  it('bounds the devices in flight by maxInFlight, else ROLLOUT_MAX_IN_FLIGHT', () => {
    expect(step(decide(input({ r: rollout({ spec: { maxInFlight: 50 } }), inFlight: 20 })), 'notify').budget).toBe(30);
    expect(step(decide(input({ r: rollout({ spec: { maxInFlight: 50 } }), inFlight: 60 })), 'notify').budget).toBe(-10);
    const byDefault = input({ inFlight: 9_000, extra: { config: { tickSeconds: 1, defaultMaxInFlight: 10_000 } } });
    expect(step(decide(byDefault), 'notify').budget).toBe(1_000);
    const own = input({ r: rollout({ spec: { maxInFlight: 100 } }), inFlight: 10, extra: { config: { tickSeconds: 1, defaultMaxInFlight: 10_000 } } });
    expect(step(decide(own), 'notify').budget).toBe(90);
  });

  it('paces a ramp and carries its decision to the applier, even when the cap leaves nothing', () => {
    const r = rollout({ spec: { ramp: { ratePerMinute: 60, growthFactor: 1 }, maxInFlight: 10 } });
    const first = step(decide(input({ r, extra: { delivery: { inFlight: 0, rampCounts: { notifiedEver: 0, recentNotices: 0 } } } })), 'notify');
    expect(first.budget).toBe(1);
    expect(first.ramp?.rate).toBe(60);
    const later = decide(
      input({
        r,
        extra: { delivery: { inFlight: 0, rampCounts: { notifiedEver: 1, recentNotices: 1 } }, ramp: { at: NOW.getTime() - 1_000, credit: 0, recent: [] } },
      }),
    );
    expect(step(later, 'notify').budget).toBe(1);
    const capped = step(decide(input({ r, extra: { delivery: { inFlight: 10, rampCounts: { notifiedEver: 10, recentNotices: 0 } } } })), 'notify');
    expect(capped.budget).toBe(0);
    expect(capped.ramp).toBeDefined();
  });

  it('tells nobody to install outside maintenance windows, with a note on the next opening', () => {
    // Opens at 02:00 UTC for an hour; NOW is 12:00 UTC.
    const windows = [{ cron: '0 2 * * *', durationSeconds: 3600, timeZone: 'UTC' }];
    const closed = step(decide(input({ r: rollout({ spec: { maintenanceWindows: windows } }) })), 'wait');
    expect(closed.until).toEqual(new Date('2026-12-02T02:00:00Z'));
    expect(closed.note).toMatchObject({ wave: 0, kind: 'window-closed:2026-12-02T02:00:00.000Z' });
    const open = [{ cron: '0 12 * * *', durationSeconds: 3600, timeZone: 'UTC' }];
    expect(decide(input({ r: rollout({ spec: { maintenanceWindows: open } }) })).kind).toBe('notify');
  });

  it('a download-only rollout downloads outside maintenance windows', () => {
    const windows = [{ cron: '0 2 * * *', durationSeconds: 3600, timeZone: 'UTC' }];
    expect(decide(input({ r: rollout({ action: 'download-only', spec: { maintenanceWindows: windows } }) })).kind).toBe('notify');
  });

  it('sends the install command first once requested (window open), then notifies', () => {
    const r = rollout({ installRequestedAt: minutesAgo(1) });
    expect(decide(input({ r, stage: 'judged' }))).toEqual({ kind: 'install' });
    expect(decide(input({ r, stage: 'judged', extra: { installSent: true } })).kind).toBe('notify');
    const closed = rollout({
      installRequestedAt: minutesAgo(1),
      spec: { maintenanceWindows: [{ cron: '0 2 * * *', durationSeconds: 3600, timeZone: 'UTC' }] },
    });
    expect(decide(input({ r: closed, stage: 'judged' })).kind).toBe('wait');
  });

  it('delivers after a wave verdict that holds (stage judged), without judging the wave again', () => {
    expect(decide(input({ stage: 'judged', counts: { committed: 10 } })).kind).toBe('notify');
  });
});
