import { describe, expect, it } from '@jest/globals';
import { TokenBuckets } from './token-bucket.js';

describe('TokenBuckets', () => {
  it('allows a burst, then refuses with the wait until the next token, then refills', () => {
    const b = new TokenBuckets({ burst: 3, perSecond: 2 });
    const t0 = 1_000_000;
    expect([b.take('a', t0), b.take('a', t0), b.take('a', t0)]).toEqual([0, 0, 0]);
    expect(b.take('a', t0)).toBe(500);
    expect(b.peek('a', t0 + 250)).toBe(250);
    expect(b.take('a', t0 + 500)).toBe(0);
    // Another key has its own bucket.
    expect(b.take('b', t0)).toBe(0);
    // Never refills past the burst.
    expect([1, 2, 3, 4].map(() => b.take('a', t0 + 60_000))).toEqual([0, 0, 0, 500]);
  });

  it('is off with perSecond 0', () => {
    const b = new TokenBuckets({ burst: 1, perSecond: 0 });
    for (let i = 0; i < 10; i++) expect(b.take('a')).toBe(0);
    expect(b.size).toBe(0);
  });

  it('keeps at most maxKeys buckets, dropping the least recently used', () => {
    const b = new TokenBuckets({ burst: 1, perSecond: 1 }, 2);
    b.take('a', 0);
    b.take('b', 0);
    b.take('a', 0); // refused, but touched: b is now the oldest
    b.take('c', 0);
    expect(b.size).toBe(2);
    expect(b.peek('a', 0)).toBeGreaterThan(0);
    expect(b.peek('b', 0)).toBe(0); // dropped: starts full again
  });
});
