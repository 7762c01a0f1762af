import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { AdmissionBound } from './admission-bound.js';

describe('AdmissionBound', () => {
  it('admits up to the bound, refuses past it, and admits again once a slot is released', () => {
    const admission = new AdmissionBound(2);
    const a = admission.tryEnter();
    const b = admission.tryEnter();
    expect(a).not.toBe(false);
    expect(b).not.toBe(false);
    expect(admission.tryEnter()).toBe(false);
    expect(admission.refusedBusy).toBe(1);
    expect(admission.pending).toBe(2);
    if (a) a();
    expect(admission.pending).toBe(1);
    expect(admission.tryEnter()).not.toBe(false);
    expect(admission.peak).toBe(2);
  });

  it('gives a slot back once however often its release is called', () => {
    const admission = new AdmissionBound(1);
    const release = admission.tryEnter();
    if (!release) throw new Error('first request refused');
    release();
    release();
    expect(admission.pending).toBe(0);
    expect(admission.tryEnter()).not.toBe(false);
    expect(admission.tryEnter()).toBe(false);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new AdmissionBound(0)).toThrow(/positive integer/);
    expect(() => new AdmissionBound(1.5)).toThrow(/positive integer/);
  });

  it('never holds more than the bound nor goes negative, whatever the order of enters and releases', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.oneof(fc.constant('enter' as const), fc.nat({ max: 20 })), { maxLength: 200 }), (bound, ops) => {
        const admission = new AdmissionBound(bound);
        const held: (() => void)[] = [];
        let refused = 0;
        for (const op of ops) {
          if (op === 'enter') {
            const release = admission.tryEnter();
            if (release) held.push(release);
            else refused++;
          } else if (held.length > 0) {
            // Releases come back in any order, some twice.
            const release = held[op % held.length]!;
            release();
            release();
            held.splice(op % held.length, 1);
          }
          expect(admission.pending).toBe(held.length);
          expect(admission.pending).toBeLessThanOrEqual(bound);
        }
        expect(admission.refusedBusy).toBe(refused);
      }),
    );
  });
});
