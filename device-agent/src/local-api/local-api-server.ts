import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { isValidModelName } from '@fleetline/protocol';
import type { Agent } from '../agent.js';

/**
 * What the local API needs of the agent. The listener methods are spelled out rather than picked
 * from Agent: EventEmitter's `on` returns `this`, which would demand a whole Agent of any stand-in.
 */
export interface LocalApiAgent extends Pick<Agent, 'activeModels' | 'recordInference'> {
  on(event: 'active-changed', listener: (model: string, version: string | null) => void): void;
  off(event: 'active-changed', listener: (model: string, version: string | null) => void): void;
}

/** POST /v1/inferences body item. */
export const inferenceSampleSchema = z
  .object({
    model: z.string().min(1).max(64),
    latencyMs: z.number().nonnegative().max(3_600_000),
    ok: z.boolean(),
    label: z.string().min(1).max(64).optional(),
    score: z.number().min(0).max(1).optional(),
    /**
     * The input the application gave the active model. Only used on the device: while a shadow
     * runs, a sample of inputs is mirrored to the candidate (a runtime-specific value, e.g. the
     * feeds of an onnx session), and the answers are compared with `label` or `score`.
     */
    input: z.unknown().optional(),
  })
  .refine((s) => !(s.label !== undefined && s.score !== undefined), 'give label or score, not both');
const inferenceBodySchema = z.union([inferenceSampleSchema, z.array(inferenceSampleSchema).min(1).max(10_000)]);

const MAX_BODY = 2 * 1024 * 1024;

export interface LocalApiOptions {
  port?: number;
  host?: string;
  /** Listen on this Unix socket instead of TCP. */
  socketPath?: string;
  /** File mode of the socket (0o600: the agent's user only; 0o660: also its group). Default 0o660. */
  socketMode?: number;
}

/** Why a request was refused before routing; the answer names the code. */
export type RequestRefusal = { status: 403 | 415 | 421; code: string; message: string };

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * The local API has no authentication, so what keeps a web page in a browser on the same device
 * (a kiosk) from using it is refused here, before any route (pure; exported for the unit test):
 *
 * - a request with an `Origin` header, or a `Sec-Fetch-Site` other than `none`: browsers add
 *   these to every cross-origin (and every non-GET) request and pages cannot remove them, while
 *   the native applications this API is for do not send them;
 * - over TCP, a `Host` that is not a loopback name: a page that rebinds its own DNS name to
 *   127.0.0.1 sends its own name (DNS rebinding);
 * - a POST whose body is not declared `application/json`: an HTML form or a "simple" fetch can
 *   only send text/plain, urlencoded or multipart without a CORS preflight, and this API answers
 *   no preflight.
 */
export function refuseRequest(req: Pick<IncomingMessage, 'method' | 'headers'>, tcpPort: number | undefined): RequestRefusal | undefined {
  if (req.headers.origin !== undefined)
    return { status: 403, code: 'cross-origin-refused', message: 'requests from web pages (Origin header) are not accepted by the local API' };
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none')
    return {
      status: 403,
      code: 'cross-origin-refused',
      message: `requests from web pages (Sec-Fetch-Site: ${String(site)}) are not accepted by the local API`,
    };
  if (tcpPort !== undefined) {
    const host = (req.headers.host ?? '').toLowerCase();
    const name = host.endsWith(`:${tcpPort}`) ? host.slice(0, -`:${tcpPort}`.length) : host;
    if (!LOOPBACK_HOSTS.has(name)) return { status: 421, code: 'host-refused', message: `Host ${host || '(none)'} is not a loopback address of the local API` };
  }
  if (req.method === 'POST') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json')
      return { status: 415, code: 'unsupported-media-type', message: `POST bodies must be Content-Type: application/json (got ${type || 'none'})` };
  }
  return undefined;
}

/**
 * HTTP API for the application on the device, on a Unix socket (the default on Linux, file mode
 * 0660 or 0600) or on loopback TCP. It has no authentication: on a socket the file mode decides who
 * may use it; on TCP every local process may, and `refuseRequest` keeps browsers out.
 *
 *   GET  /v1/models            active version + absolute path per model
 *   GET  /v1/models/{name}     one model
 *   GET  /v1/events            Server-Sent Events: `active-changed` when a model's active version moves
 *   POST /v1/inferences        inference results (one or an array) for the telemetry aggregator; with `input`,
 *                              also mirrored to a shadow candidate (sampled, queued, off the request path)
 */
export class LocalApiServer {
  private server: Server | undefined;
  private readonly clients = new Set<ServerResponse>();
  private readonly onActive = (model: string, version: string | null): void => void this.broadcast(model, version);
  private address_: string | undefined;
  private tcpPort: number | undefined;

  constructor(
    private readonly agent: LocalApiAgent,
    private readonly opts: LocalApiOptions = {},
  ) {}

  /** `http://127.0.0.1:port` or `unix:<socket path>`. */
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
      const path = this.opts.socketPath;
      await mkdir(dirname(path), { recursive: true, mode: 0o750 });
      await rm(path, { force: true }); // a socket left by a killed agent
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
      // The umask decides the mode listen() creates the socket with; the mode asked for is set at
      // once (connecting needs write permission, which a usual umask of 022 does not give others).
      await chmod(path, this.opts.socketMode ?? 0o660);
      this.address_ = `unix:${path}`;
    } else {
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.opts.port ?? 7878, this.opts.host ?? '127.0.0.1', resolve));
      const a = server.address() as AddressInfo;
      this.tcpPort = a.port;
      this.address_ = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
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
    const refusal = refuseRequest(req, this.tcpPort);
    if (refusal) {
      // Not read, so the connection is closed rather than kept for a body nobody wants.
      res.setHeader('connection', 'close');
      this.json(res, refusal.status, { statusCode: refusal.status, message: refusal.message, code: refusal.code });
      return;
    }
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
