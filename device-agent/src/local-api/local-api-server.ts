import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { isValidModelName } from '@fleetline/protocol';
import type { Agent } from '../agent.js';

/** POST /v1/inferences body item. */
export const inferenceSampleSchema = z
  .object({
    model: z.string().min(1).max(64),
    latencyMs: z.number().nonnegative().max(3_600_000),
    ok: z.boolean(),
    label: z.string().min(1).max(64).optional(),
    score: z.number().min(0).max(1).optional(),
  })
  .refine((s) => !(s.label !== undefined && s.score !== undefined), 'give label or score, not both');
const inferenceBodySchema = z.union([inferenceSampleSchema, z.array(inferenceSampleSchema).min(1).max(10_000)]);

const MAX_BODY = 2 * 1024 * 1024;

export interface LocalApiOptions {
  port?: number;
  host?: string;
  socketPath?: string;
}

/**
 * HTTP API for the application on the device. Loopback (or a Unix socket) only: it has no
 * authentication, by design the same trust level as the filesystem it hands paths into.
 *
 *   GET  /v1/models            active version + absolute path per model
 *   GET  /v1/models/{name}     one model
 *   GET  /v1/events            Server-Sent Events: `active-changed` when a model's active version moves
 *   POST /v1/inferences        inference results (one or an array) for the telemetry aggregator
 */
export class LocalApiServer {
  private server: Server | undefined;
  private readonly clients = new Set<ServerResponse>();
  private readonly onActive = (model: string, version: string | null): void => void this.broadcast(model, version);
  private address_: string | undefined;

  constructor(
    private readonly agent: Agent,
    private readonly opts: LocalApiOptions = {},
  ) {}

  /** `http://127.0.0.1:port` or the socket path. */
  get address(): string | undefined {
    return this.address_;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.json(res, 500, { message: err instanceof Error ? err.message : 'internal error' });
        else res.end();
      });
    });
    this.server = server;
    this.agent.on('active-changed', this.onActive);
    if (this.opts.socketPath) {
      await rm(this.opts.socketPath, { force: true });
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.opts.socketPath, resolve));
      this.address_ = this.opts.socketPath;
    } else {
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.opts.port ?? 7878, this.opts.host ?? '127.0.0.1', resolve));
      const a = server.address() as AddressInfo;
      this.address_ = `http://${a.address}:${a.port}`;
    }
  }

  async stop(): Promise<void> {
    this.agent.off('active-changed', this.onActive);
    for (const c of this.clients) c.end();
    this.clients.clear();
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new Error('body too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname.replace(/\/+$/, '');
    if (req.method === 'GET' && path === '/v1/models') {
      this.json(res, 200, { models: await this.agent.activeModels() });
      return;
    }
    const m = /^\/v1\/models\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && m) {
      const name = decodeURIComponent(m[1]!);
      const model = isValidModelName(name) ? (await this.agent.activeModels()).find((x) => x.model === name) : undefined;
      if (!model) this.json(res, 404, { statusCode: 404, message: `model ${name} has no active version`, code: 'model-not-found' });
      else this.json(res, 200, model);
      return;
    }
    if (req.method === 'GET' && path === '/v1/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // Initial snapshot so a client that connects late knows the current state (SSE spec: event + data lines).
      res.write(`event: snapshot\ndata: ${JSON.stringify({ models: await this.agent.activeModels() })}\n\n`);
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
      return;
    }
    if (req.method === 'POST' && path === '/v1/inferences') {
      let body: unknown;
      try {
        body = JSON.parse(await this.readBody(req));
      } catch (err: unknown) {
        this.json(res, 400, { statusCode: 400, message: err instanceof Error ? err.message : 'invalid body', code: 'invalid-body' });
        return;
      }
      const parsed = inferenceBodySchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        this.json(res, 400, { statusCode: 400, message: `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`, code: 'invalid-inference' });
        return;
      }
      const samples = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
      let accepted = 0;
      for (const s of samples) if (this.agent.recordInference(s)) accepted++;
      this.json(res, 202, { accepted, ignored: samples.length - accepted });
      return;
    }
    this.json(res, 404, { statusCode: 404, message: `no route ${req.method} ${url.pathname}`, code: 'not-found' });
  }

  private async broadcast(model: string, version: string | null): Promise<void> {
    const active = (await this.agent.activeModels()).find((x) => x.model === model);
    const data = JSON.stringify({ model, version, path: active?.path ?? null, previousVersion: active?.previousVersion ?? null });
    for (const c of this.clients) c.write(`event: active-changed\ndata: ${data}\n\n`);
  }
}
