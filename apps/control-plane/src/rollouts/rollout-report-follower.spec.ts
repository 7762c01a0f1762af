import { describe, expect, it } from '@jest/globals';
import { eventsOf } from './rollout-report-follower.js';

describe('eventsOf', () => {
  it('counts failures by code and refusals per rollout, at the highest wave moved', () => {
    const events = eventsOf([
      { rolloutId: 'a', wave: 0, state: 'failed', failureCode: 'download-failed' },
      { rolloutId: 'a', wave: 1, state: 'failed', failureCode: 'download-failed' },
      { rolloutId: 'a', wave: 1, state: 'failed', failureCode: null },
      { rolloutId: 'a', wave: 1, state: 'committed', failureCode: null },
      { rolloutId: 'b', wave: 2, state: 'skipped', failureCode: 'incompatible' },
    ]);
    expect(events.get('a')).toEqual([
      { type: 'devices-failed', wave: 1, message: '3 devices reported failure', data: { count: 3, codes: { 'download-failed': 2, unknown: 1 } } },
    ]);
    expect(events.get('b')).toEqual([
      { type: 'devices-incompatible', wave: 2, message: '1 devices refused the version as incompatible (skipped)', data: { count: 1 } },
    ]);
  });

  it('has no events for progress alone', () => {
    expect(eventsOf([{ rolloutId: 'a', wave: 0, state: 'installing', failureCode: null }]).get('a')).toEqual([]);
    expect(eventsOf([]).size).toBe(0);
  });
});
