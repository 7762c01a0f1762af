import { describe, expect, it } from '@jest/globals';
import { releasedReason } from './conflicts.js';
import { nothingLeft } from './nothing-left.js';

describe('a rollout with no member left to act on', () => {
  it('says every member went to higher-priority rollouts when they all did', () => {
    const reason = releasedReason('r-2', 5);
    const out = nothingLeft(10, 10, [{ reason, devices: 10 }]);
    expect(out.stateReason).toBe('no device left to act on: every member was released to a higher-priority rollout');
    expect(out.event).toMatchObject({
      type: 'cancelled',
      data: { cause: 'no-devices-left', members: 10, released: 10, reasons: { [reason]: 10 } },
    });
    expect(out.event.message).toContain(`10 ${reason}`);
  });

  it('names the mix of reasons, and only the first few in the message', () => {
    const reasons = [
      { reason: releasedReason('r-2', 5), devices: 4 },
      { reason: 'incompatible-hardware: no build fits: needs npu', devices: 3 },
      ...['a', 'b', 'c', 'd'].map((x) => ({ reason: `device unknown ${x}`, devices: 1 })),
      { reason: null, devices: 1 },
    ];
    const out = nothingLeft(12, 4, reasons);
    expect(out.stateReason).toBe('no device left to act on: every member was skipped (4 released to higher-priority rollouts)');
    expect(out.event.message).toMatch(
      /^cancelled: every member was skipped \(4 released to higher-priority rollouts\) \(12 devices: 4 released .*; 3 incompatible-hardware.*; \.\.\.\); nothing is told/,
    );
    expect(Object.keys(out.event.data!['reasons'] as object)).toHaveLength(7);
    expect(nothingLeft(2, 0, [{ reason: 'x', devices: 2 }]).stateReason).toBe('no device left to act on: every member was skipped');
  });
});
