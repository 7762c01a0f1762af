import { describe, expect, it } from '@jest/globals';
import { EnrollError, enrollRetryDelay } from './enroll.js';

describe('enrollRetryDelay', () => {
  it('waits as long as Retry-After says on 429 and 503, within the cap', () => {
    expect(enrollRetryDelay(new EnrollError('busy', 429, 'rate-limited', 7), 1234, 60_000)).toBe(7000);
    expect(enrollRetryDelay(new EnrollError('busy', 503, undefined, 0), 1234, 60_000)).toBe(0);
    expect(enrollRetryDelay(new EnrollError('busy', 429, 'rate-limited', 3600), 1234, 60_000)).toBe(60_000);
  });

  it('falls back to the backoff without Retry-After, and when nothing answered', () => {
    expect(enrollRetryDelay(new EnrollError('busy', 429), 1234, 60_000)).toBe(1234);
    expect(enrollRetryDelay(new EnrollError('cannot reach'), 800, 60_000)).toBe(800);
  });

  it('gives up at once on a refusal that would be refused again', () => {
    for (const status of [400, 401, 403, 404, 409, 500]) expect(enrollRetryDelay(new EnrollError('no', status), 1000, 60_000)).toBeNull();
  });
});
