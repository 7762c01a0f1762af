import { describe, expect, it } from '@jest/globals';
import { ExitCode } from './exit-codes.js';
import { isFailurePause, normalizeRollout, progressBar, renderPlainLine, renderProgress, TerminalBlock, watchOutcome, waveTotals } from './watch.js';

const view = {
  id: 'r1',
  model: 'detector',
  version: '2.1.0',
  state: 'running',
  stateReason: null,
  action: 'install',
  currentWave: 1,
  targetCount: 20,
  waves: [
    {
      index: 0,
      size: 10,
      spec: { percent: 50 },
      counts: { committed: 9, failed: 1 },
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:01:00.000Z',
    },
    {
      index: 1,
      size: 10,
      spec: { percent: 100 },
      counts: { committed: 2, downloading: 3, pending: 5 },
      startedAt: '2026-01-01T00:02:00.000Z',
      finishedAt: null,
    },
  ],
};

describe('normalizeRollout', () => {
  it('reads a rollout view, directly or wrapped in an event', () => {
    const p = normalizeRollout(view);
    expect(p).toMatchObject({ id: 'r1', state: 'running', currentWave: 1, targetCount: 20 });
    expect(p?.waves[1]).toMatchObject({ index: 1, percent: 100, size: 10, counts: { committed: 2, downloading: 3, pending: 5 } });
    expect(normalizeRollout({ type: 'progress', rollout: view })?.id).toBe('r1');
  });

  it('returns undefined for values that are not rollouts', () => {
    expect(normalizeRollout({ type: 'device', deviceId: 'd1' })).toBeUndefined();
    expect(normalizeRollout(null)).toBeUndefined();
    expect(normalizeRollout('x')).toBeUndefined();
  });

  it('accepts counts under other names and count strings', () => {
    const p = normalizeRollout({ id: 'r', state: 'running', waves: [{ idx: 0, size: '4', stateCounts: { committed: '4' } }] });
    expect(p?.waves[0]).toMatchObject({ index: 0, size: 4, counts: { committed: 4 } });
  });
});

describe('watchOutcome', () => {
  const base = normalizeRollout(view)!;
  it('keeps watching active rollouts and operator pauses', () => {
    expect(watchOutcome(base).done).toBe(false);
    expect(watchOutcome({ ...base, state: 'paused', stateReason: 'paused by operator' }).done).toBe(false);
    expect(watchOutcome({ ...base, state: 'paused', stateReason: null }).done).toBe(false);
  });

  it('ends with 0 on completed and 4 on a bad ending', () => {
    expect(watchOutcome({ ...base, state: 'completed' })).toMatchObject({ done: true, exitCode: ExitCode.Ok });
    for (const state of ['aborted', 'rolled-back', 'cancelled']) {
      expect(watchOutcome({ ...base, state })).toMatchObject({ done: true, exitCode: ExitCode.RolloutFailed });
    }
    expect(watchOutcome({ ...base, state: 'paused', stateReason: 'wave 1: failure threshold crossed (3 of 10 failed)' })).toMatchObject({
      done: true,
      exitCode: ExitCode.RolloutFailed,
    });
  });

  it('tells failure pauses from operator pauses', () => {
    expect(isFailurePause('health gate latency_p95 breached')).toBe(true);
    expect(isFailurePause('3 devices failed')).toBe(true);
    expect(isFailurePause('paused by operator')).toBe(false);
    expect(isFailurePause(null)).toBe(false);
  });
});

describe('rendering', () => {
  const p = normalizeRollout(view)!;
  it('counts success, failure and in-flight devices per wave', () => {
    expect(waveTotals(p.waves[0]!, 'install')).toEqual({ success: 9, failed: 1, inFlight: 0, pending: 0, skipped: 0 });
    expect(waveTotals(p.waves[1]!, 'install')).toEqual({ success: 2, failed: 0, inFlight: 3, pending: 5, skipped: 0 });
    expect(waveTotals({ ...p.waves[1]!, counts: { downloaded: 4 } }, 'download-only').success).toBe(4);
    expect(waveTotals({ ...p.waves[1]!, counts: { downloaded: 4 }, action: 'shadow' }, 'install')).toMatchObject({ success: 4, inFlight: 0 });
    expect(normalizeRollout({ id: 'r', state: 'running', waves: [{ idx: 0, size: 2, spec: { action: 'shadow', percent: 5 } }] })?.waves[0]?.action).toBe(
      'shadow',
    );
  });

  it('draws a fixed-width bar', () => {
    expect(progressBar({ success: 5, failed: 0, inFlight: 0, pending: 5, skipped: 0 }, 10, 10)).toBe('[=====     ]');
    expect(progressBar({ success: 2, failed: 1, inFlight: 3, pending: 4, skipped: 0 }, 10, 10)).toBe('[==x---    ]');
    expect(progressBar({ success: 0, failed: 0, inFlight: 0, pending: 0, skipped: 0 }, 0, 4)).toBe('[    ]');
  });

  it('renders one line per wave and a plain summary line', () => {
    const lines = renderProgress(p);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('RUNNING');
    expect(lines[1]).toContain('9/10 ok, 1 failed');
    expect(lines[1]).toContain('done');
    expect(lines[2]).toContain('3 in flight');
    expect(lines[2]).toContain('running');
    expect(renderPlainLine(p)).toBe('running wave 2/2 w1:9/10(1 failed) w2:2/10');
  });

  it('says a preparing rollout has no membership to count yet, and keeps watching it', () => {
    const preparing = { ...p, state: 'preparing', targetCount: 0, waves: [] };
    expect(renderProgress(preparing)).toEqual([`rollout ${p.id}  ${p.model} ${p.version}  PREPARING  preparing its membership`]);
    expect(renderPlainLine(preparing)).toBe('preparing (the control plane is materialising its membership)');
    expect(watchOutcome(preparing)).toMatchObject({ done: false });
  });

  it('redraws in place with cursor-up and clear', () => {
    const written: string[] = [];
    const block = new TerminalBlock((t) => written.push(t));
    block.draw(['a', 'b']);
    block.draw(['c']);
    expect(written).toEqual(['a\nb\n', '\x1b[2F\x1b[Jc\n']);
  });

  it('cuts lines to the terminal width so wrapping cannot break the redraw', () => {
    const written: string[] = [];
    new TerminalBlock(
      (t) => written.push(t),
      () => 5,
    ).draw(['abcdefgh', 'ab']);
    expect(written).toEqual(['abcd\nab\n']);
  });
});
