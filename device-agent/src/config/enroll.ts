import { Backoff, sleep } from '../util/backoff.js';
import { fetchTrusting, type HttpResponse } from '../util/tls-fetch.js';
import { deviceCredentialsSchema, enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';

export class EnrollError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    /** Seconds the server asked to wait before trying again (Retry-After on 429/503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface EnrollOptions {
  timeoutMs?: number;
  ca?: string;
  /** Attempts in all (default 6): a busy server (429, 503) or none reachable yet is tried again. */
  attempts?: number;
  /** Longest wait between two attempts (default 60 s), whatever Retry-After says. */
  maxWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  onRetry?: (err: EnrollError, waitMs: number) => void;
}

/**
 * How long to wait before the next attempt, or null to give up now. Only a refusal that says
 * "later" (429 Too Many Requests, 503) or no answer at all is worth another try; any other 4xx
 * (bad token, taken id) would be refused again. Retry-After wins over the backoff (RFC 9110 §10.2.3).
 */
export function enrollRetryDelay(err: EnrollError, backoffMs: number, maxWaitMs: number): number | null {
  const transient = err.status === undefined || err.status === 429 || err.status === 503;
  if (!transient) return null;
  const asked = err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : backoffMs;
  return Math.min(maxWaitMs, Math.max(asked, 0));
}

/**
 * `POST {server}/api/v1/enroll`; validates both the request and the answer with the protocol
 * schemas. Rate-limited or unreachable: tries again (opts.attempts), after Retry-After when the
 * server gives one, else after a jittered exponential backoff, so a fleet that boots at once
 * spreads its enrollments instead of failing them.
 */
export async function enroll(server: string, request: EnrollRequest, opts: EnrollOptions = {}): Promise<DeviceCredentials> {
  const attempts = opts.attempts ?? 6;
  const backoff = new Backoff({ baseMs: 1000, capMs: opts.maxWaitMs ?? 60_000, ...(opts.random ? { random: opts.random } : {}) });
  for (let attempt = 1; ; attempt++) {
    try {
      return await enrollOnce(server, request, opts);
    } catch (err: unknown) {
      if (!(err instanceof EnrollError) || attempt >= attempts) throw err;
      const wait = enrollRetryDelay(err, backoff.next(), opts.maxWaitMs ?? 60_000);
      if (wait === null) throw err;
      opts.onRetry?.(err, wait);
      await (opts.sleep ?? sleep)(wait);
    }
  }
}

async function enrollOnce(server: string, request: EnrollRequest, opts: EnrollOptions): Promise<DeviceCredentials> {
  const body = enrollRequestSchema.parse(request);
  const url = `${server.replace(/\/+$/, '')}/api/v1/enroll`;
  let res: HttpResponse;
  try {
    res = await fetchTrusting(opts.ca)(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err: unknown) {
    throw new EnrollError(`cannot reach ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new EnrollError(`enrollment answered HTTP ${res.status} with non-JSON body`, res.status);
  }
  if (!res.ok) {
    const e = json as { message?: unknown; code?: unknown };
    const message = Array.isArray(e.message) ? e.message.join('; ') : String(e.message ?? 'enrollment refused');
    const retryAfter = Number(res.headers.get('retry-after') ?? Number.NaN);
    throw new EnrollError(
      `enrollment refused (HTTP ${res.status}${typeof e.code === 'string' ? `, ${e.code}` : ''}): ${message}`,
      res.status,
      typeof e.code === 'string' ? e.code : undefined,
      Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
    );
  }
  const creds = deviceCredentialsSchema.safeParse(json);
  if (!creds.success)
    throw new EnrollError(
      `enrollment answer is not valid credentials: ${creds.error.issues[0]?.path.join('.')}: ${creds.error.issues[0]?.message}`,
      res.status,
    );
  return creds.data;
}
