import { Backoff, sleep } from '../util/backoff.js';
import { fetchTrusting, type FetchFn, type HttpResponse } from '../util/tls-fetch.js';
import { deviceCredentialsSchema, enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';
import { decideEnrollRetry } from './enroll-retry.logic.js';

export class EnrollError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    /** The Retry-After header of the refusal, as sent (seconds or an HTTP date). */
    readonly retryAfter?: string,
    /** No answer: the error code of the failed request (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT...). */
    readonly networkCode?: string,
  ) {
    super(message);
  }
}

/** Default of `EnrollOptions.totalTimeoutMs` (and of `fleet-agent enroll --enroll-timeout`). */
export const DEFAULT_ENROLL_TIMEOUT_MS = 300_000;

export interface EnrollRetryEvent {
  error: EnrollError;
  waitMs: number;
  /** The attempt that was refused (1 for the first). */
  attempt: number;
  elapsedMs: number;
  totalTimeoutMs: number;
}

export interface EnrollOptions {
  /** Longest one request may take (default 30 s, less when the total time is nearly spent). */
  timeoutMs?: number;
  ca?: string;
  /**
   * Longest the whole enrollment may take, waits included (default 300 s): a busy server (429,
   * 503) or none reachable yet is tried again until then. 0: one attempt only.
   */
  totalTimeoutMs?: number;
  /** Longest wait between two attempts (default 60 s), whatever Retry-After says. */
  maxWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  onRetry?: (event: EnrollRetryEvent) => void;
}

/** Shortest time a request is given, however little of the total is left. */
const MIN_REQUEST_MS = 1000;

/**
 * `POST {server}/api/v1/enroll`; validates both the request and the answer with the protocol
 * schemas. Rate-limited (429), unavailable (503) or unreachable: tries again until
 * opts.totalTimeoutMs is spent, no sooner than Retry-After says, with a full-jitter exponential
 * backoff (see decideEnrollRetry), so a fleet that boots at once behind one address spreads its
 * enrollments over the rate limit instead of failing them. Any other refusal is thrown at once.
 */
export async function enroll(server: string, request: EnrollRequest, opts: EnrollOptions = {}): Promise<DeviceCredentials> {
  const totalTimeoutMs = opts.totalTimeoutMs ?? DEFAULT_ENROLL_TIMEOUT_MS;
  const maxWaitMs = opts.maxWaitMs ?? 60_000;
  // Time spent on the monotonic clock: a device's wall clock may jump by years at its first NTP sync.
  const clock = (): number => performance.now();
  // One client (and keep-alive pool) for every attempt.
  const fetch = fetchTrusting(opts.ca);
  const backoff = new Backoff({ baseMs: 1000, capMs: maxWaitMs, ...(opts.random ? { random: opts.random } : {}) });
  const started = clock();
  for (let attempt = 1; ; attempt++) {
    const left = totalTimeoutMs - (clock() - started);
    try {
      return await enrollOnce(fetch, server, request, Math.ceil(Math.max(MIN_REQUEST_MS, Math.min(opts.timeoutMs ?? 30_000, left))));
    } catch (err: unknown) {
      if (!(err instanceof EnrollError)) throw err;
      const elapsedMs = clock() - started;
      const decision = decideEnrollRetry(
        { status: err.status, networkCode: err.networkCode, retryAfter: err.retryAfter, elapsedMs, nowMs: Date.now(), jitterMs: backoff.next() },
        { budgetMs: totalTimeoutMs, maxWaitMs },
      );
      if (!decision.retry) {
        if (decision.reason === 'refused' || attempt === 1) throw err;
        throw new EnrollError(
          `${err.message}; giving up after ${attempt} attempts in ${Math.round(elapsedMs / 1000)} s`,
          err.status,
          err.code,
          err.retryAfter,
          err.networkCode,
        );
      }
      opts.onRetry?.({ error: err, waitMs: decision.waitMs, attempt, elapsedMs, totalTimeoutMs });
      await (opts.sleep ?? sleep)(decision.waitMs);
    }
  }
}

async function enrollOnce(fetch: FetchFn, server: string, request: EnrollRequest, timeoutMs: number): Promise<DeviceCredentials> {
  const body = enrollRequestSchema.parse(request);
  const url = `${server.replace(/\/+$/, '')}/api/v1/enroll`;
  let res: HttpResponse;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err: unknown) {
    throw unreachable(url, err);
  }
  return judgeEnrollAnswer(res.status, await res.text(), res.headers.get('retry-after') ?? undefined);
}

/** A request that got no answer, keeping its error code (what decides whether trying again can help). */
export function unreachable(url: string, err: unknown): EnrollError {
  // Read as properties, not through instanceof Error: node:http's errors may come from another realm (a vm context).
  const { code, message } = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  return new EnrollError(
    `cannot reach ${url}: ${typeof message === 'string' ? message : String(err)}`,
    undefined,
    undefined,
    undefined,
    typeof code === 'string' ? code : undefined,
  );
}

/**
 * The answer to an enrollment as every client judges it (this one and the simulator's): the
 * credentials, or an EnrollError with the server's status, code, message and Retry-After.
 */
export function judgeEnrollAnswer(status: number, text: string, retryAfter: string | undefined): DeviceCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // A proxy's HTML 503 still says when to come back.
    throw new EnrollError(`enrollment answered HTTP ${status} with non-JSON body`, status, undefined, retryAfter);
  }
  if (status < 200 || status >= 300) {
    const e = (json ?? {}) as { message?: unknown; code?: unknown };
    const message = Array.isArray(e.message) ? e.message.join('; ') : String(e.message ?? 'enrollment refused');
    const code = typeof e.code === 'string' ? e.code : undefined;
    throw new EnrollError(`enrollment refused (HTTP ${status}${code ? `, ${code}` : ''}): ${message}`, status, code, retryAfter);
  }
  const creds = deviceCredentialsSchema.safeParse(json);
  if (!creds.success)
    throw new EnrollError(`enrollment answer is not valid credentials: ${creds.error.issues[0]?.path.join('.')}: ${creds.error.issues[0]?.message}`, status);
  return creds.data;
}
