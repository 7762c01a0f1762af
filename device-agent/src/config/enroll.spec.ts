import { describe, expect, it } from '@jest/globals';
import { EnrollError, judgeEnrollAnswer } from './enroll.js';

const refusal = (status: number, text: string, retryAfter?: string): EnrollError => {
  try {
    judgeEnrollAnswer(status, text, retryAfter);
  } catch (err: unknown) {
    if (err instanceof EnrollError) return err;
    throw err;
  }
  throw new Error('accepted');
};

describe('judgeEnrollAnswer', () => {
  it("keeps the server's status, code, message and Retry-After", () => {
    const err = refusal(429, JSON.stringify({ statusCode: 429, code: 'rate-limited', message: 'too many enrollments' }), '3');
    expect(err).toMatchObject({ status: 429, code: 'rate-limited', retryAfter: '3' });
    expect(err.message).toBe('enrollment refused (HTTP 429, rate-limited): too many enrollments');
    expect(refusal(401, JSON.stringify({ message: ['token expired', 'try another'] })).message).toBe(
      'enrollment refused (HTTP 401): token expired; try another',
    );
  });

  it("keeps the Retry-After of a proxy's non-JSON 503", () => {
    expect(refusal(503, '<html>busy</html>', 'Sun, 01 Mar 2026 12:00:05 GMT')).toMatchObject({
      status: 503,
      retryAfter: 'Sun, 01 Mar 2026 12:00:05 GMT',
      message: 'enrollment answered HTTP 503 with non-JSON body',
    });
  });

  it('refuses a 2xx that is not valid credentials', () => {
    expect(refusal(201, '{}').message).toMatch(/^enrollment answer is not valid credentials: /);
  });
});
