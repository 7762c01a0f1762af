import { describe, it, expect } from '@jest/globals';
import { Backoff } from './backoff.js';

describe('Backoff (full jitter)', () => {
  it('doubles the window from the base up to the cap', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 });
    const delays = Array.from({ length: 9 }, () => b.next());
    expect(delays).toEqual([999, 1999, 3999, 7999, 15_999, 31_999, 59_999, 59_999, 59_999]);
  });

  it('draws uniformly from [0, window): a random of 0 gives 0', () => {
    const b = new Backoff({ random: () => 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([0, 0, 0]);
    expect(b.attempts).toBe(3);
  });

  it('stays within the window for any random value and never overflows', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000 });
    for (let i = 0; i < 2000; i++) {
      const ceiling = b.ceiling();
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(ceiling);
      expect(Number.isFinite(ceiling)).toBe(true);
    }
  });

  it('resets to the base window after a stable connection', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0.5 });
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.ceiling()).toBe(1000);
    expect(b.next()).toBe(500);
  });
});
