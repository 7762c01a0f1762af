import { describe, it, expect } from '@jest/globals';
import { UPDATE_STATES, TERMINAL_UPDATE_STATES, type UpdateState } from '@fleetline/protocol';
import { canTransition, IllegalTransitionError, transition, TRANSITION_TABLE, UPDATE_EVENTS, type UpdateEvent } from './transition-table.js';

const LEGAL: Record<string, UpdateState> = {
  'idle|start': 'downloading',
  'idle|reject': 'incompatible',
  'downloading|fetched': 'verifying',
  'downloading|fail': 'failed',
  'downloading|abandon': 'idle',
  'verifying|stage': 'downloaded',
  'verifying|verified': 'installing',
  'verifying|fail': 'failed',
  'verifying|abandon': 'idle',
  'downloaded|install': 'verifying',
  'downloaded|abandon': 'idle',
  'installing|installed': 'activating',
  'installing|fail': 'failed',
  'activating|activated': 'health-checking',
  'activating|fail': 'rolling-back',
  'health-checking|healthy': 'committed',
  'health-checking|fail': 'rolling-back',
  'rolling-back|restored': 'rolled-back',
  'rolling-back|fail': 'failed',
};

describe('update transition table', () => {
  const all: Array<[UpdateState, UpdateEvent]> = UPDATE_STATES.flatMap((s) => UPDATE_EVENTS.map((e): [UpdateState, UpdateEvent] => [s, e]));

  it.each(all)('%s + %s is legal exactly when listed', (state, event) => {
    const expected = LEGAL[`${state}|${event}`];
    if (expected) {
      expect(transition(state, event)).toBe(expected);
      expect(canTransition(state, event)).toBe(true);
    } else {
      expect(() => transition(state, event)).toThrow(IllegalTransitionError);
      expect(canTransition(state, event)).toBe(false);
    }
  });

  it('has exactly the documented rows and no duplicates', () => {
    expect(TRANSITION_TABLE).toHaveLength(Object.keys(LEGAL).length);
    expect(new Set(TRANSITION_TABLE.map((r) => `${r.from}|${r.event}`)).size).toBe(TRANSITION_TABLE.length);
  });

  it('has no way out of a terminal state except the download-only park', () => {
    for (const s of TERMINAL_UPDATE_STATES.filter((t) => t !== 'downloaded')) {
      expect(TRANSITION_TABLE.filter((r) => r.from === s)).toEqual([]);
    }
  });

  it('never reaches failed from a state where the new version may be active', () => {
    // Once activation began, every failure goes through rolling-back first.
    for (const s of ['activating', 'health-checking'] as const) {
      expect(transition(s, 'fail')).toBe('rolling-back');
    }
  });

  it('reaches every wire state', () => {
    const reached = new Set<UpdateState>(['idle', ...TRANSITION_TABLE.map((r) => r.to)]);
    expect([...reached].sort()).toEqual([...UPDATE_STATES].sort());
  });
});
