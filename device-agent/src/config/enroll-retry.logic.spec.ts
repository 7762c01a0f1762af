import { describe, expect, it } from '@jest/globals';
import { decideEnrollRetry, type EnrollRetryInput, noAnswerIsTransient, parseRetryAfter } from './enroll-retry.logic.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const policy = { budgetMs: 300_000, maxWaitMs: 60_000 };
const input = (over: Partial<EnrollRetryInput>): EnrollRetryInput => ({
  status: 429,
  retryAfter: undefined,
  elapsedMs: 0,
  nowMs: NOW,
  jitterMs: 0,
  ...over,
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, a past date as now', () => {
    expect(parseRetryAfter('7', NOW)).toBe(7000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
    expect(parseRetryAfter('Sun, 01 Mar 2026 12:00:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', NOW)).toBe(0);
  });

  it('ignores what is absent or not RFC 9110', () => {
    for (const v of [undefined, '', '-5', '1.5', 'soon', '12abc', 'Tomorrow-ish']) expect(parseRetryAfter(v, NOW)).toBeUndefined();
  });
});

describe('decideEnrollRetry', () => {
  it('retries 429 and 503 no sooner than Retry-After, with the jitter on top', () => {
    expect(decideEnrollRetry(input({ status: 429, retryAfter: '1', jitterMs: 0 }), policy)).toEqual({ retry: true, waitMs: 1000 });
    expect(decideEnrollRetry(input({ status: 429, retryAfter: '1', jitterMs: 730 }), policy)).toEqual({ retry: true, waitMs: 1730 });
    expect(decideEnrollRetry(input({ status: 503, retryAfter: 'Sun, 01 Mar 2026 12:00:05 GMT', jitterMs: 250 }), policy)).toEqual({
      retry: true,
      waitMs: 5250,
    });
  });

  it('falls back to the full-jitter backoff without Retry-After, and when nothing answered', () => {
    expect(decideEnrollRetry(input({ status: 503, jitterMs: 1234 }), policy)).toEqual({ retry: true, waitMs: 1234 });
    expect(decideEnrollRetry(input({ status: undefined, networkCode: 'ECONNREFUSED', jitterMs: 800 }), policy)).toEqual({ retry: true, waitMs: 800 });
    expect(decideEnrollRetry(input({ status: 429, retryAfter: 'whenever', jitterMs: 90 }), policy)).toEqual({ retry: true, waitMs: 90 });
  });

  it('clamps a huge Retry-After (or a far date) to the longest wait', () => {
    expect(decideEnrollRetry(input({ retryAfter: '3600', jitterMs: 500 }), policy)).toEqual({ retry: true, waitMs: 60_000 });
    expect(decideEnrollRetry(input({ retryAfter: 'Fri, 01 Jan 2100 00:00:00 GMT' }), policy)).toEqual({ retry: true, waitMs: 60_000 });
  });

  it('gives up at once on a refusal that would be refused again', () => {
    for (const status of [400, 401, 403, 404, 409, 410, 422, 500, 502])
      expect(decideEnrollRetry(input({ status, retryAfter: '1' }), policy)).toEqual({ retry: false, reason: 'refused' });
  });

  it('retries no answer only when a later one could differ', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ABORT_ERR', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'CERT_NOT_YET_VALID'])
      expect([code, noAnswerIsTransient(code)]).toEqual([code, true]);
    for (const code of [
      undefined,
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'CERT_HAS_EXPIRED',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'EPROTO',
      'ERR_INVALID_URL',
    ])
      expect([code, noAnswerIsTransient(code)]).toEqual([code, false]);
    expect(decideEnrollRetry(input({ status: undefined, networkCode: 'SELF_SIGNED_CERT_IN_CHAIN' }), policy)).toEqual({ retry: false, reason: 'refused' });
  });

  it('lets the caller widen what is transient (the simulator retries any 5xx)', () => {
    const any5xx = { ...policy, transient: (s: number) => s === 429 || s >= 500 };
    expect(decideEnrollRetry(input({ status: 502, jitterMs: 10 }), any5xx)).toEqual({ retry: true, waitMs: 10 });
    expect(decideEnrollRetry(input({ status: 401 }), any5xx)).toEqual({ retry: false, reason: 'refused' });
  });

  it('stays within the total time: a last wait is cut short, a floor past the end gives up now', () => {
    expect(decideEnrollRetry(input({ elapsedMs: 299_000, jitterMs: 5000 }), policy)).toEqual({ retry: true, waitMs: 1000 });
    expect(decideEnrollRetry(input({ elapsedMs: 295_000, retryAfter: '10' }), policy)).toEqual({ retry: false, reason: 'out-of-time' });
    expect(decideEnrollRetry(input({ elapsedMs: 300_000 }), policy)).toEqual({ retry: false, reason: 'out-of-time' });
    expect(decideEnrollRetry(input({ elapsedMs: 0 }), { ...policy, budgetMs: 0 })).toEqual({ retry: false, reason: 'out-of-time' });
  });
});
