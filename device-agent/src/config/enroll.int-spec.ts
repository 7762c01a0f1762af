import { createServer, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { DeviceCredentials } from '@fleetline/protocol';
import { enrollAnswer } from '../testing/agent-options.fixture.js';
import { enroll, EnrollError, type EnrollRetryEvent } from './enroll.js';

interface Scripted {
  status: number;
  headers?: OutgoingHttpHeaders;
  body: unknown;
}

const credentials = (baseUrl: string): DeviceCredentials => enrollAnswer(baseUrl, 'cam-1');

const TOKEN = 'fle_0123456789abcdef0123';

const rateLimited = (retryAfter: string): Scripted => ({
  status: 429,
  headers: { 'retry-after': retryAfter },
  body: { statusCode: 429, code: 'rate-limited', message: 'too many enrollments from this address' },
});

/** A real HTTP server answering enrollments from a script (the last answer repeats), recording when each came. */
async function scriptedServer(script: (baseUrl: string) => Scripted[]): Promise<{ url: string; at: number[]; server: Server }> {
  const at: number[] = [];
  let answers: Scripted[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      at.push(performance.now());
      const a = answers[Math.min(at.length - 1, answers.length - 1)]!;
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  answers = script(url);
  return { url, at, server };
}

describe('enroll() retries', () => {
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('waits out 429s as Retry-After says (seconds or HTTP date), then enrolls', async () => {
    const s = await scriptedServer((url) => [
      rateLimited('1'),
      rateLimited(new Date(Date.now() + 3000).toUTCString()),
      { status: 201, body: credentials(url) },
    ]);
    server = s.server;
    const retries: EnrollRetryEvent[] = [];
    const creds = await enroll(s.url, { token: TOKEN }, { random: () => 0, onRetry: (r) => retries.push(r) });
    expect(creds.deviceId).toBe('cam-1');
    expect(s.at).toHaveLength(3);
    expect(retries.map((r) => [r.attempt, r.error.status])).toEqual([
      [1, 429],
      [2, 429],
    ]);
    expect(retries[0]!.waitMs).toBe(1000);
    // Never sooner than the server asked (the date has whole-second resolution: 1-2 s after the first retry).
    expect(s.at[1]! - s.at[0]!).toBeGreaterThanOrEqual(1000);
    expect(s.at[2]! - s.at[1]!).toBeGreaterThanOrEqual(retries[1]!.waitMs - 5);
    expect(retries[1]!.waitMs).toBeGreaterThanOrEqual(900);
  });

  it('waits for a control plane that is not up yet', async () => {
    // A free port, closed again: nothing listens on it until the server starts there a second later.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const url = `http://127.0.0.1:${port}`;
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify(credentials(url)));
      });
    });
    const retries: EnrollRetryEvent[] = [];
    const enrolled = enroll(url, { token: TOKEN }, { onRetry: (r) => retries.push(r) });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    expect((await enrolled).deviceId).toBe('cam-1');
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0]!.error).toMatchObject({ networkCode: 'ECONNREFUSED' });
    expect(retries[0]!.error.message).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/v1\/enroll: connect ECONNREFUSED/);
  });

  it('gives up with the last refusal once the total time is spent', async () => {
    const s = await scriptedServer(() => [rateLimited('1')]);
    server = s.server;
    const started = performance.now();
    const err = await enroll(s.url, { token: TOKEN }, { random: () => 0, totalTimeoutMs: 2500 }).catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(EnrollError);
    expect((err as EnrollError).status).toBe(429);
    expect((err as EnrollError).message).toMatch(
      /^enrollment refused \(HTTP 429, rate-limited\): too many enrollments from this address; giving up after 3 attempts in 2 s$/,
    );
    expect(s.at).toHaveLength(3);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(took).toBeLessThan(4000);
  });

  it('fails at once with the server message on any other refusal', async () => {
    const s = await scriptedServer(() => [
      { status: 401, headers: { 'retry-after': '1' }, body: { statusCode: 401, code: 'invalid-enrollment-token', message: 'enrollment token expired' } },
    ]);
    server = s.server;
    const retries: EnrollRetryEvent[] = [];
    const err = await enroll(s.url, { token: TOKEN }, { onRetry: (r) => retries.push(r) }).catch((e: unknown) => e);
    expect((err as EnrollError).message).toBe('enrollment refused (HTTP 401, invalid-enrollment-token): enrollment token expired');
    expect(s.at).toHaveLength(1);
    expect(retries).toEqual([]);
  });

  it('tries once only with a total time of 0', async () => {
    const s = await scriptedServer(() => [rateLimited('1')]);
    server = s.server;
    const err = await enroll(s.url, { token: TOKEN }, { totalTimeoutMs: 0 }).catch((e: unknown) => e);
    expect((err as EnrollError).message).toBe('enrollment refused (HTTP 429, rate-limited): too many enrollments from this address');
    expect(s.at).toHaveLength(1);
  });
});
