import http from 'node:http';
import { enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';
import { EnrollError, judgeEnrollAnswer, unreachable } from '../config/enroll.js';

/**
 * `POST {server}/api/v1/enroll` for a simulated fleet: the same request, the same validation of
 * both sides with the protocol schemas and the same errors (Retry-After included) as the agent's
 * `enroll()`, judged by the same judgeEnrollAnswer, over
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
          res.on('error', (err) => reject(unreachable(url.href, err)));
          res.on('end', () => {
            try {
              resolve(judgeEnrollAnswer(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), res.headers['retry-after']));
            } catch (err: unknown) {
              reject(err);
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(unreachable(url.href, err)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
