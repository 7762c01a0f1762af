import { describe, it, expect } from '@jest/globals';
import type { UpdateState } from '@fleetline/protocol';
import { decideRecovery, UpdateJournal, type JournalEntry } from './journal.js';
import { MemoryStateStore } from '../storage/store.js';
import { IllegalTransitionError } from './transition-table.js';

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
});
