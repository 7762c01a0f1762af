import { describe, expect, it } from '@jest/globals';
import { resolveConflicts } from './conflicts.js';

describe('conflict resolution (one active rollout per model per device)', () => {
  it('has nothing to resolve without overlap', () => {
    expect(resolveConflicts(0, [])).toEqual({ kind: 'none' });
    expect(resolveConflicts(0, [{ rolloutId: 'a', priority: 5, devices: 0 }])).toEqual({ kind: 'none' });
  });

  it('refuses when any overlapping rollout has the same or a higher priority, listing all of them', () => {
    const r = resolveConflicts(1, [
      { rolloutId: 'a', priority: 0, devices: 3 },
      { rolloutId: 'b', priority: 1, devices: 2 },
    ]);
    expect(r.kind).toBe('blocked');
    expect(r.kind === 'blocked' && r.conflicts.map((c) => c.rolloutId)).toEqual(['a', 'b']);
  });

  it('takes the devices from lower-priority rollouts', () => {
    const r = resolveConflicts(10, [
      { rolloutId: 'a', priority: 0, devices: 3 },
      { rolloutId: 'b', priority: 9, devices: 2 },
    ]);
    expect(r).toEqual({
      kind: 'release',
      conflicts: [
        { rolloutId: 'a', priority: 0, devices: 3 },
        { rolloutId: 'b', priority: 9, devices: 2 },
      ],
    });
  });
});
