/** Whether enrolling again may get another answer, and when: the pure part of `enroll()`'s retries. */

export interface EnrollRetryInput {
  /** Status of the refusal; undefined when nothing answered (refused connection, timeout, reset). */
  status: number | undefined;
  /** Without a status: the error code of the failed request (Node's `err.code`: ECONNREFUSED, a TLS verify error...). */
  networkCode?: string | undefined;
  /** The `Retry-After` header as sent, if any. */
  retryAfter: string | undefined;
  /** Time spent since the first attempt started (monotonic clock). */
  elapsedMs: number;
  /** Wall clock when the answer came, to read a `Retry-After` HTTP date against. */
  nowMs: number;
  /** This retry's full-jitter backoff draw (util/backoff.ts). */
  jitterMs: number;
}

export interface EnrollRetryPolicy {
  /** Total time enrollment may take, waits included; past it the last refusal stands. */
  budgetMs: number;
  /** Longest single wait, and the most of a `Retry-After` that is believed. */
  maxWaitMs: number;
  /** Statuses that mean "later" (default: 429 and 503); no answer is judged by noAnswerIsTransient. */
  transient?: (status: number) => boolean;
}

export type EnrollRetryDecision = { retry: true; waitMs: number } | { retry: false; reason: 'refused' | 'out-of-time' };

/** 429 (rate limit) and 503 (overloaded, database down) say "later"; any other 4xx would be refused again. */
export const enrollStatusIsTransient = (status: number): boolean => status === 429 || status === 503;

/**
 * Whether a request that got no answer may get one later: a server not up yet, a network still
 * coming up (refused, reset, timed out, DNS not resolving yet) may; a certificate the CA does not
 * vouch for, a TLS handshake with a plain HTTP port or a malformed URL will fail the same way
 * every time, so they fail at once. A certificate "not yet valid" is the exception: it is what a
 * device whose clock has not been set by NTP yet sees. No code at all is a programming or URL error.
 */
export function noAnswerIsTransient(networkCode: string | undefined): boolean {
  if (networkCode === undefined) return false;
  if (networkCode === 'CERT_NOT_YET_VALID') return true;
  return !/CERT|SELF_SIGNED|^UNABLE_TO_|^EPROTO$|^ERR_SSL_|^ERR_TLS_|^ERR_INVALID_|^ERR_OSSL_|^HOSTNAME_MISMATCH/.test(networkCode);
}

/**
 * `Retry-After` (RFC 9110 §10.2.3) in milliseconds from `nowMs`: delta-seconds or an HTTP date
 * (one in the past is 0). Undefined when absent or unreadable, so the backoff alone decides.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // A date needs a letter (a month or weekday name): Date.parse would read a bare "-5" or "1.5" as a year.
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * Retry after `waitMs`, or give up. The server's `Retry-After` is a floor (trying sooner would be
 * refused again), clamped to `maxWaitMs` so a wrong clock or a huge value cannot park a device; the
 * jitter goes on top of it because every device a rate limit turned away at the same moment is told
 * the same number of seconds, and without it they would all come back in the same instant, where
 * again only one gets through. A floor beyond the budget gives up now rather than sleep for nothing.
 */
export function decideEnrollRetry(input: EnrollRetryInput, policy: EnrollRetryPolicy): EnrollRetryDecision {
  const transient = policy.transient ?? enrollStatusIsTransient;
  if (input.status !== undefined ? !transient(input.status) : !noAnswerIsTransient(input.networkCode)) return { retry: false, reason: 'refused' };
  const remaining = policy.budgetMs - input.elapsedMs;
  const floor = Math.min(policy.maxWaitMs, parseRetryAfter(input.retryAfter, input.nowMs) ?? 0);
  if (remaining <= 0 || floor >= remaining) return { retry: false, reason: 'out-of-time' };
  const waitMs = Math.min(policy.maxWaitMs, remaining, floor + Math.max(0, input.jitterMs));
  return { retry: true, waitMs: Math.round(waitMs) };
}
