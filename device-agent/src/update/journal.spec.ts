import { describe, it, expect } from '@jest/globals';
import type { UpdateState } from '@fleetline/protocol';
import { decideRecovery, recoveryTransition, UpdateJournal, type JournalEntry } from './journal.js';
import { MemoryStateStore } from '../storage/store.js';
import { IllegalTransitionError, transition } from './transition-table.js';

const now = new Date('2026-01-01T12:00:00Z');
function entry(state: UpdateState, extra: Partial<JournalEntry> = {}): JournalEntry {
  return {
    model: 'm',
    desired: {
      v: 1,
      model: 'm',
      version: '1.1.0',
      revision: 2,
      action: 'install',
      artifacts: [{ targetPath: 'm/1.1.0/f', sha256: 'a'.repeat(64), length: 1, runtime: 'onnx', compatibility: {} }],
      assignedAt: '2026-01-01T00:00:00Z',
    },
    state,
    previousVersion: '1.0.0',
    priorPrevious: null,
    restarts: 0,
    startedAt: '2026-01-01T11:00:00Z',
    updatedAt: '2026-01-01T11:00:00Z',
    deadline: '2026-01-01T13:00:00Z',
    ...extra,
  };
}

describe('decideRecovery', () => {
  it.each(['committed', 'rolled-back', 'failed', 'incompatible', 'downloaded'] as UpdateState[])('does nothing for terminal %s', (s) => {
    expect(decideRecovery(entry(s), now)).toEqual({ kind: 'none' });
  });

  it.each(['idle', 'downloading', 'verifying', 'installing', 'rolling-back'] as UpdateState[])('resumes %s without counting a restart', (s) => {
    expect(decideRecovery(entry(s), now)).toEqual({ kind: 'resume', state: s, restarts: 0 });
  });

  it.each(['activating', 'health-checking'] as UpdateState[])('counts restarts in %s and rolls back at the limit', (s) => {
    expect(decideRecovery(entry(s, { restarts: 0 }), now)).toEqual({ kind: 'resume', state: s, restarts: 1 });
    expect(decideRecovery(entry(s, { restarts: 1 }), now)).toEqual({ kind: 'resume', state: s, restarts: 2 });
    expect(decideRecovery(entry(s, { restarts: 2 }), now)).toMatchObject({ kind: 'roll-back', code: 'boot-loop', restarts: 3 });
    expect(decideRecovery(entry(s, { restarts: 0 }), now, 1)).toMatchObject({ kind: 'roll-back', code: 'boot-loop' });
  });

  it('fails a pre-activation update whose deadline passed', () => {
    const late = new Date('2026-01-01T14:00:00Z');
    expect(decideRecovery(entry('downloading'), late)).toMatchObject({ kind: 'fail', code: 'download-timeout' });
    // Installing is past the download: finish it regardless of the deadline.
    expect(decideRecovery(entry('installing'), late)).toMatchObject({ kind: 'resume' });
  });

  it('fails an update still journaled in idle after an outage longer than its deadline, through a row of the table', () => {
    const late = new Date('2026-01-01T14:00:00Z');
    const e = entry('idle');
    const decision = decideRecovery(e, late);
    expect(decision).toMatchObject({ kind: 'fail', code: 'download-timeout' });
    const change = recoveryTransition(e, decision)!;
    expect(transition(e.state, change.event)).toBe('failed');
  });

  it('does not time out a staged download promoted by an install command (the download ended long ago)', () => {
    const late = new Date('2026-01-01T14:00:00Z');
    expect(decideRecovery(entry('verifying', { installRequested: true }), late)).toEqual({ kind: 'resume', state: 'verifying', restarts: 0 });
  });

  it('counts a restart through the restart row, and rolls back through fail', () => {
    const e = entry('health-checking', { restarts: 1 });
    const bump = recoveryTransition(e, decideRecovery(e, now))!;
    expect(bump).toEqual({ event: 'restart', patch: { restarts: 2 } });
    expect(transition(e.state, bump.event)).toBe('health-checking');
    const limit = entry('health-checking', { restarts: 2 });
    const back = recoveryTransition(limit, decideRecovery(limit, now))!;
    expect(back.event).toBe('fail');
    expect(transition(limit.state, back.event)).toBe('rolling-back');
    expect(recoveryTransition(entry('downloading'), decideRecovery(entry('downloading'), now))).toBeUndefined();
  });
});

describe('UpdateJournal', () => {
  it('persists every transition and refuses illegal ones', async () => {
    const store = new MemoryStateStore();
    const j = new UpdateJournal(store);
    let e = await j.begin(entry('idle').desired, '1.0.0', null, now, 60_000);
    expect(e.deadline).toBe('2026-01-01T12:01:00.000Z');
    e = await j.apply(e, 'start', now);
    expect((await j.load('m'))!.state).toBe('downloading');
    await expect(j.apply(e, 'healthy', now)).rejects.toBeInstanceOf(IllegalTransitionError);
    expect((await j.load('m'))!.state).toBe('downloading');
    await j.apply(e, 'fail', now, { failure: { code: 'download-failed', message: 'x' } });
    expect(await j.load('m')).toMatchObject({ state: 'failed', failure: { code: 'download-failed' } });
  });

  it('opens a new entry only over an ended update and removes one only when nothing is in flight', async () => {
    const store = new MemoryStateStore();
    const j = new UpdateJournal(store);
    const d = entry('idle').desired;
    const e = await j.apply(await j.begin(d, '1.0.0', null, now, 60_000), 'start', now);
    await expect(j.begin({ ...d, revision: 3 }, '1.0.0', null, now, 60_000)).rejects.toBeInstanceOf(IllegalTransitionError);
    await expect(j.remove('m')).rejects.toBeInstanceOf(IllegalTransitionError);
    expect((await j.load('m'))!.state).toBe('downloading');
    expect((await j.apply(e, 'abandon', now)).state).toBe('idle');
    await j.remove('m');
    expect(await j.load('m')).toBeUndefined();
    const ack = await j.begin(d, '1.0.0', null, now, null);
    expect(ack.deadline).toBeUndefined();
    expect((await j.apply(ack, 'acknowledge', now)).state).toBe('committed');
    await j.begin({ ...d, revision: 4 }, '1.0.0', null, now, 60_000);
  });
});
