import http from 'node:http';
import { deviceCredentialsSchema, enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';
import { EnrollError } from '../config/enroll.js';

/**
 * `POST {server}/api/v1/enroll` for a simulated fleet: the same request, the same validation of
 * both sides with the protocol schemas and the same errors as the agent's `enroll()`, over
 * node:http with one keep-alive pool per process. The agent's fetch()-based client is right for
 * one device; for 15,000 enrollments in a process, fetch's per-request objects grew the heap by
 * ~13 KB of RSS per device (measured with test/bench/simulator-memory.bench.mjs), none of it
 * state a device keeps.
 */
export class EnrollClient {
  private readonly agent: http.Agent;

  constructor(maxSockets = 100) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  enroll(server: string, request: EnrollRequest, timeoutMs = 30_000): Promise<DeviceCredentials> {
    const body = JSON.stringify(enrollRequestSchema.parse(request));
    const url = new URL(`${server.replace(/\/+$/, '')}/api/v1/enroll`);
    if (url.protocol !== 'http:') return Promise.reject(new EnrollError(`simulated devices enroll over http only, not ${url.protocol}`));
    return new Promise<DeviceCredentials>((resolve, reject) => {
      const req = http.request(
        url,
        { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new EnrollError(`cannot reach ${url.href}: ${err.message}`)));
          res.on('end', () => {
            try {
              resolve(answer(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
            } catch (err: unknown) {
              reject(err);
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new EnrollError(`cannot reach ${url.href}: ${err.message}`)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The answer as `enroll()` judges it (config/enroll.ts): same statuses, same messages. */
function answer(status: number, text: string): DeviceCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new EnrollError(`enrollment answered HTTP ${status} with non-JSON body`, status);
  }
  if (status < 200 || status >= 300) {
    const e = json as { message?: unknown; code?: unknown };
    const message = Array.isArray(e.message) ? e.message.join('; ') : String(e.message ?? 'enrollment refused');
    throw new EnrollError(
      `enrollment refused (HTTP ${status}${typeof e.code === 'string' ? `, ${e.code}` : ''}): ${message}`,
      status,
      typeof e.code === 'string' ? e.code : undefined,
    );
  }
  const creds = deviceCredentialsSchema.safeParse(json);
  if (!creds.success)
    throw new EnrollError(`enrollment answer is not valid credentials: ${creds.error.issues[0]?.path.join('.')}: ${creds.error.issues[0]?.message}`, status);
  return creds.data;
}
