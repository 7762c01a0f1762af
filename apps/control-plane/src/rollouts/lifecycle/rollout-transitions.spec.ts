import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { ROLLOUT_STATES } from '../rollout.types.js';
import {
  ACTIVE_ROLLOUT_STATES,
  allows,
  HOLDING_ROLLOUT_STATES,
  INITIAL_ROLLOUT_STATES,
  ROLLOUT_TRANSITIONS,
  rolloutStateDiagram,
  targetOf,
} from './rollout-transitions.js';

const TERMINAL = ['completed', 'cancelled', 'aborted', 'rolled-back'] as const;

describe('ROLLOUT_TRANSITIONS', () => {
  it('leaves no terminal state: nothing moves a finished rollout', () => {
    for (const t of Object.values(ROLLOUT_TRANSITIONS)) for (const s of TERMINAL) expect(t.from).not.toContain(s);
  });

  it('reaches every state from the states a rollout is created in', () => {
    const seen = new Set<string>(INITIAL_ROLLOUT_STATES);
    for (let grew = true; grew;) {
      grew = false;
      for (const t of Object.values(ROLLOUT_TRANSITIONS))
        for (const to of t.to)
          if (t.from.some((f) => seen.has(f)) && !seen.has(to)) {
            seen.add(to);
            grew = true;
          }
    }
    expect([...seen].sort()).toEqual([...ROLLOUT_STATES].sort());
  });

  it('lets every non-terminal state end: cancel or abort from the active ones, finish-rollback from rolling-back', () => {
    for (const s of ACTIVE_ROLLOUT_STATES) {
      expect(allows('cancel', s)).toBe(true);
      expect(allows('abort', s)).toBe(true);
    }
    expect(allows('finish-rollback', 'rolling-back')).toBe(true);
    expect(allows('cancel', 'preparing')).toBe(true);
    expect(HOLDING_ROLLOUT_STATES).toEqual([...ACTIVE_ROLLOUT_STATES, 'rolling-back']);
  });

  it('refuses the operator actions the API documents as invalid', () => {
    expect(allows('resume', 'running')).toBe(false);
    expect(allows('pause', 'paused')).toBe(false);
    expect(allows('cancel', 'rolling-back')).toBe(false);
    expect(allows('install', 'scheduled')).toBe(false);
  });

  it('keeps a preparing rollout out of the engine and the conflict check until it is prepared', () => {
    expect(ACTIVE_ROLLOUT_STATES).not.toContain('preparing');
    expect(HOLDING_ROLLOUT_STATES).not.toContain('preparing');
    expect(targetOf('prepared')).toBe('scheduled');
    expect(targetOf('prepare-failed')).toBe('cancelled');
    for (const op of ['pause', 'resume', 'advance', 'abort', 'retry', 'install', 'start'] as const) expect([op, allows(op, 'preparing')]).toEqual([op, false]);
  });

  it('resolves targets, and throws on an edge the table does not have', () => {
    expect(targetOf('cancel')).toBe('cancelled');
    expect(targetOf('resume', 'scheduled')).toBe('scheduled');
    expect(targetOf('finish-rollback', 'aborted')).toBe('aborted');
    expect(() => targetOf('resume')).toThrow(/allowed: scheduled, running/);
    expect(() => targetOf('pause', 'completed')).toThrow(/cannot lead to completed/);
    expect(() => targetOf('retry')).toThrow(/allowed: none/);
  });

  it('is the state diagram in rollouts/README.md', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /```mermaid\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block).toBe(rolloutStateDiagram());
  });
});
