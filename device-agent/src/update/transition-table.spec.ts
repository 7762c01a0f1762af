import { describe, it, expect } from '@jest/globals';
import { UPDATE_STATES, TERMINAL_UPDATE_STATES, type UpdateState } from '@fleetline/protocol';
import {
  ACTIVATION_STATES,
  canBegin,
  canRemove,
  canTransition,
  END_STATES,
  IllegalTransitionError,
  IN_FLIGHT_STATES,
  transition,
  TRANSITION_TABLE,
  UPDATE_EVENTS,
  type UpdateEvent,
} from './transition-table.js';

const LEGAL: Record<string, UpdateState> = {
  'idle|start': 'downloading',
  'idle|reject': 'incompatible',
  'idle|acknowledge': 'committed',
  'idle|fail': 'failed',
  'idle|abandon': 'idle',
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
  'installing|abandon': 'idle',
  'activating|activated': 'health-checking',
  'activating|fail': 'rolling-back',
  'activating|restart': 'activating',
  'health-checking|healthy': 'committed',
  'health-checking|fail': 'rolling-back',
  'health-checking|restart': 'health-checking',
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

  it('derives the state groups from the rows', () => {
    expect([...ACTIVATION_STATES].sort()).toEqual(['activating', 'health-checking']);
    expect([...END_STATES].sort()).toEqual(['committed', 'failed', 'incompatible', 'rolled-back']);
    expect([...IN_FLIGHT_STATES].sort()).toEqual(['activating', 'downloading', 'health-checking', 'idle', 'installing', 'rolling-back', 'verifying']);
  });

  it('can end every in-flight update with fail, so the loop breaker always has a row to take', () => {
    for (const s of IN_FLIGHT_STATES) expect(canTransition(s, 'fail')).toBe(true);
  });

  it('reaches an end state from every state (no update can be stuck by the table itself)', () => {
    for (const start of UPDATE_STATES) {
      const seen = new Set<UpdateState>([start]);
      const queue = [start];
      while (queue.length > 0) {
        const s = queue.shift()!;
        for (const r of TRANSITION_TABLE.filter((x) => x.from === s)) {
          if (!seen.has(r.to)) {
            seen.add(r.to);
            queue.push(r.to);
          }
        }
      }
      expect([...seen].some((s) => END_STATES.includes(s))).toBe(true);
    }
  });

  it('opens a new entry only over an ended update, and removes one only when nothing is in flight', () => {
    expect(canBegin(undefined)).toBe(true);
    for (const s of UPDATE_STATES) expect(canBegin(s)).toBe(END_STATES.includes(s));
    for (const s of UPDATE_STATES) expect(canRemove(s)).toBe(s === 'idle' || END_STATES.includes(s));
  });

  it('makes abandon idempotent: a crash between abandoning and removing the entry abandons again', () => {
    expect(transition(transition('downloading', 'abandon'), 'abandon')).toBe('idle');
  });

  it('reaches every wire state', () => {
    const reached = new Set<UpdateState>(['idle', ...TRANSITION_TABLE.map((r) => r.to)]);
    expect([...reached].sort()).toEqual([...UPDATE_STATES].sort());
  });
});
