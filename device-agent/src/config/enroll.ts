import { fetchTrusting, type HttpResponse } from '../util/tls-fetch.js';
import { deviceCredentialsSchema, enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';

export class EnrollError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** `POST {server}/api/v1/enroll`; validates both the request and the answer with the protocol schemas. */
export async function enroll(server: string, request: EnrollRequest, opts: { timeoutMs?: number; ca?: string } = {}): Promise<DeviceCredentials> {
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
    throw new EnrollError(
      `enrollment refused (HTTP ${res.status}${typeof e.code === 'string' ? `, ${e.code}` : ''}): ${message}`,
      res.status,
      typeof e.code === 'string' ? e.code : undefined,
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
