import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decideDownloadRetry, type DownloadRetryInput } from './download-retry.logic.js';

const policy = { maxAttempts: 6, maxWaitMs: 60_000 };
const input = (over: Partial<DownloadRetryInput>): DownloadRetryInput => ({
  status: undefined,
  retryAfter: undefined,
  failures: 0,
  remainingMs: 600_000,
  nowMs: Date.UTC(2026, 0, 1),
  jitterMs: 100,
  ...over,
});

describe('decideDownloadRetry', () => {
  it('fails at once on a 4xx that would be refused again', () => {
    for (const status of [400, 401, 403, 404, 416]) expect(decideDownloadRetry(input({ status }), policy)).toEqual({ retry: false, reason: 'refused' });
  });

  it('retries no answer, 5xx, 408 and 429 as counted attempts until maxAttempts', () => {
    for (const status of [undefined, 500, 502, 503, 408, 429]) {
      expect(decideDownloadRetry(input({ status, failures: 4 }), policy)).toEqual({ retry: true, waitMs: 100, counted: true });
      expect(decideDownloadRetry(input({ status, failures: 5 }), policy)).toEqual({ retry: false, reason: 'out-of-attempts' });
    }
  });

  it('waits at least Retry-After on a busy answer, with the jitter on top, and does not count it', () => {
    expect(decideDownloadRetry(input({ status: 503, retryAfter: '2', failures: 5 }), policy)).toEqual({ retry: true, waitMs: 2_100, counted: false });
    const date = new Date(Date.UTC(2026, 0, 1, 0, 0, 5)).toUTCString();
    expect(decideDownloadRetry(input({ status: 429, retryAfter: date }), policy)).toEqual({ retry: true, waitMs: 5_100, counted: false });
  });

  it('believes at most maxWaitMs of a Retry-After, and never waits past the deadline', () => {
    expect(decideDownloadRetry(input({ status: 503, retryAfter: '86400' }), policy)).toEqual({ retry: true, waitMs: 60_100, counted: false });
    expect(decideDownloadRetry(input({ status: 503, retryAfter: '30', remainingMs: 10_000 }), policy)).toEqual({ retry: false, reason: 'out-of-time' });
    expect(decideDownloadRetry(input({ status: 500, remainingMs: 50, jitterMs: 5_000 }), policy)).toEqual({ retry: true, waitMs: 50, counted: true });
    expect(decideDownloadRetry(input({ remainingMs: 0 }), policy)).toEqual({ retry: false, reason: 'out-of-time' });
  });

  it('never waits less than a busy answer asked, nor past the deadline, nor gives up on busy before the deadline', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 120 }),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        (seconds, failures, remainingMs, jitterMs) => {
          const d = decideDownloadRetry(input({ status: 503, retryAfter: String(seconds), failures, remainingMs, jitterMs }), policy);
          const floor = Math.min(policy.maxWaitMs, seconds * 1000);
          if (floor >= remainingMs) return expect(d).toEqual({ retry: false, reason: 'out-of-time' });
          expect(d.retry).toBe(true);
          if (!d.retry) return;
          expect(d.counted).toBe(false);
          expect(d.waitMs).toBeGreaterThanOrEqual(Math.min(floor, remainingMs));
          expect(d.waitMs).toBeLessThanOrEqual(remainingMs);
        },
      ),
    );
  });
});
