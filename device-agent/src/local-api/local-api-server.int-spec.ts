import { EventEmitter } from 'node:events';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ActiveModel } from '../reconcile/reconciler.js';
import { AgentClient } from '../client/index.js';
import { LocalApiServer } from './local-api-server.js';

/** The agent side of the API: a real event emitter that keeps what it is given. */
class RecordingAgent extends EventEmitter {
  readonly samples: unknown[] = [];
  async activeModels(): Promise<ActiveModel[]> {
    return [{ model: 'resnet', version: '1.0.0', previousVersion: null, path: '/models/resnet/1.0.0' }];
  }
  recordInference(sample: unknown): boolean {
    this.samples.push(sample);
    return true;
  }
}

type Target = { socketPath: string } | { port: number };

/** A raw HTTP request, so the test controls every header (fetch adds and forbids some). */
function send(
  target: Target,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; body: { code?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...('socketPath' in target ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port }), method, path, headers },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as { code?: string }) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const SAMPLE = JSON.stringify({ model: 'resnet', latencyMs: 3, ok: true });

describe.each([['tcp'], ['unix']] as const)('local API over %s refuses what a web page can send', (transport) => {
  let dir: string;
  let server: LocalApiServer;
  let target: Target;
  const agent = new RecordingAgent();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-local-api-'));
    server = new LocalApiServer(agent, transport === 'tcp' ? { port: 0 } : { socketPath: join(dir, 'run', 'local-api.sock') });
    await server.start();
    target = transport === 'tcp' ? { port: Number(new URL(server.address!).port) } : { socketPath: join(dir, 'run', 'local-api.sock') };
  });
  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts an inference report declared application/json (charset allowed)', async () => {
    const before = agent.samples.length;
    expect((await send(target, 'POST', '/v1/inferences', { 'content-type': 'application/json; charset=utf-8' }, SAMPLE)).status).toBe(202);
    expect(agent.samples.length).toBe(before + 1);
  });

  it('refuses a body sent as text/plain, urlencoded, multipart or without a type (415), recording nothing', async () => {
    const before = agent.samples.length;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const res = await send(target, 'POST', '/v1/inferences', type ? { 'content-type': type } : {}, SAMPLE);
      expect({ type, status: res.status, code: res.body.code }).toEqual({ type, status: 415, code: 'unsupported-media-type' });
    }
    expect(agent.samples.length).toBe(before);
  });

  it('refuses requests a browser marks as coming from a page: Origin, or Sec-Fetch-Site other than none (403)', async () => {
    const before = agent.samples.length;
    const pageHeaders: Record<string, string>[] = [
      { origin: 'https://kiosk.example.com' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const headers of pageHeaders) {
      const post = await send(target, 'POST', '/v1/inferences', { 'content-type': 'application/json', ...headers }, SAMPLE);
      expect({ headers, status: post.status, code: post.body.code }).toEqual({ headers, status: 403, code: 'cross-origin-refused' });
      expect((await send(target, 'GET', '/v1/models', headers)).status).toBe(403);
    }
    expect(agent.samples.length).toBe(before);
    // What a user typing the URL sends is no page's request.
    expect((await send(target, 'GET', '/v1/models', { 'sec-fetch-site': 'none' })).status).toBe(200);
  });

  if (transport === 'tcp') {
    it('refuses a Host that is not loopback (DNS rebinding) with 421', async () => {
      const port = (target as { port: number }).port;
      expect((await send(target, 'GET', '/v1/models', { host: `attacker.example:${port}` })).status).toBe(421);
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) expect((await send(target, 'GET', '/v1/models', { host })).status).toBe(200);
    });
  } else {
    it('creates the socket with mode 0660 by default, and the client reaches it', async () => {
      const socketPath = (target as { socketPath: string }).socketPath;
      const s = await stat(socketPath);
      expect(s.isSocket()).toBe(true);
      expect((s.mode & 0o777).toString(8)).toBe('660');
      const client = new AgentClient({ socketPath, flushIntervalMs: 0 });
      expect(await client.model('resnet')).toMatchObject({ version: '1.0.0' });
      const before = agent.samples.length;
      client.record({ model: 'resnet', latencyMs: 1, ok: true });
      expect(await client.flush()).toEqual({ accepted: 1, ignored: 0 });
      expect(agent.samples.length).toBe(before + 1);
      await client.close();
    });
  }
});

describe('local API Unix socket', () => {
  it('replaces a stale socket file and honours mode 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-local-api-'));
    const socketPath = join(dir, 'api.sock');
    await writeFile(socketPath, 'left by a killed agent');
    const server = new LocalApiServer(new RecordingAgent(), { socketPath, socketMode: 0o600 });
    try {
      await server.start();
      expect(server.address).toBe(`unix:${socketPath}`);
      expect(((await stat(socketPath)).mode & 0o777).toString(8)).toBe('600');
      expect((await send({ socketPath }, 'GET', '/v1/models', {})).status).toBe(200);
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
