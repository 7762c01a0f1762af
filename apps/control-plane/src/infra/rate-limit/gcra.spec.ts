import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { gcraIdleMs, gcraPeek, gcraTake } from './gcra.js';

describe('GCRA', () => {
  const policy = { burst: 3, perSecond: 2 }; // one token every 500 ms

  it('allows a burst from a fresh key, then refuses with the wait until the next token', () => {
    let tat: number | undefined;
    const t0 = 10_000;
    for (let i = 0; i < 3; i++) {
      const step = gcraTake(tat, t0, policy);
      expect(step.waitMs).toBe(0);
      tat = step.tat;
    }
    expect(tat).toBe(t0 + 1500);
    const refused = gcraTake(tat, t0, policy);
    expect(refused).toEqual({ waitMs: 500, tat });
    expect(gcraPeek(tat, t0 + 100, policy)).toBe(400);
    expect(gcraTake(tat, t0 + 500, policy).waitMs).toBe(0);
    expect(gcraIdleMs(tat!, t0)).toBe(1500);
  });

  it('treats a key whose tat is past as a full bucket', () => {
    expect(gcraPeek(undefined, 0, policy)).toBe(0);
    expect(gcraTake(1000, 60_000, policy)).toEqual({ waitMs: 0, tat: 60_500 });
    expect(gcraIdleMs(1000, 60_000)).toBe(0);
  });

  it('never allows more than burst + elapsed x rate takes (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.double({ min: 0.05, max: 100, noNaN: true }),
        fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 300 }),
        (burst, perSecond, gaps) => {
          const p = { burst, perSecond };
          let tat: number | undefined;
          let now = 0;
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            const peek = gcraPeek(tat, now, p);
            const step = gcraTake(tat, now, p);
            // peek answers what take does, without changing anything.
            expect(step.waitMs).toBe(peek);
            if (step.waitMs === 0) allowed++;
            else expect(step.tat).toBe(tat);
            tat = step.tat;
          }
          expect(allowed).toBeLessThanOrEqual(burst + Math.floor((now / 1000) * perSecond) + 1e-9);
        },
      ),
    );
  });
});
