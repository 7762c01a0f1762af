import { parseRetryAfter } from '../config/enroll-retry.logic.js';

/** One failed request for a target's bytes, as the retry decision sees it. */
export interface DownloadRetryInput {
  /** Status of the answer; undefined when nothing answered or the stream was cut. */
  status: number | undefined;
  /** The answer's `Retry-After` header as sent, if any. */
  retryAfter: string | undefined;
  /** Failed attempts before this one that counted (busy answers do not count). */
  failures: number;
  /** Time left before the download's deadline. */
  remainingMs: number;
  /** Wall clock, to read a `Retry-After` HTTP date against. */
  nowMs: number;
  /** This retry's full-jitter backoff draw (util/backoff.ts). */
  jitterMs: number;
}

export interface DownloadRetryPolicy {
  /** Failed attempts (busy answers aside) after which the download fails. */
  maxAttempts: number;
  /** Most of a `Retry-After` that is believed, so a wrong value cannot park a device. */
  maxWaitMs: number;
}

export type DownloadRetryDecision = { retry: true; waitMs: number; counted: boolean } | { retry: false; reason: 'refused' | 'out-of-attempts' | 'out-of-time' };

/**
 * "Busy": the server is up and says when to come back (503 or 429 with Retry-After; the control
 * plane answers so past ARTIFACT_MAX_STREAMS). Nothing is wrong with the download, so it costs no
 * attempt; only the deadline bounds it.
 */
export const isBusyAnswer = (status: number | undefined, retryAfter: string | undefined): boolean =>
  (status === 503 || status === 429) && retryAfter !== undefined;

/**
 * Whether to ask for a target's bytes again, and when. A 4xx other than 408 and 429 would be
 * refused again, so it fails now. A busy answer waits at least its Retry-After, with the jitter on
 * top (every device turned away at the same moment was told the same number of seconds) and does
 * not count as an attempt: a fleet downloading at once from a bounded server would otherwise fail
 * its updates exactly when the server protects itself. Anything else (no answer, a cut stream, 5xx)
 * counts, up to maxAttempts. Nothing waits past the deadline.
 */
export function decideDownloadRetry(input: DownloadRetryInput, policy: DownloadRetryPolicy): DownloadRetryDecision {
  const { status } = input;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return { retry: false, reason: 'refused' };
  const busy = isBusyAnswer(status, input.retryAfter);
  if (!busy && input.failures + 1 >= policy.maxAttempts) return { retry: false, reason: 'out-of-attempts' };
  const floor = busy ? Math.min(policy.maxWaitMs, parseRetryAfter(input.retryAfter, input.nowMs) ?? 0) : 0;
  if (input.remainingMs <= 0 || floor >= input.remainingMs) return { retry: false, reason: 'out-of-time' };
  const waitMs = Math.min(input.remainingMs, floor + Math.max(0, input.jitterMs));
  return { retry: true, waitMs: Math.round(waitMs), counted: !busy };
}
