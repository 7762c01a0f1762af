import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TufRepoFixture } from './tuf-repo.fixture.js';

export interface RequestLogEntry {
  path: string;
  range: string | undefined;
  status: number;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/**
 * node:http server for a TufRepoFixture: `/tuf/metadata/{file}` and `/tuf/targets/{path}` with HTTP
 * Basic auth, single-range requests (RFC 9110 §14.2, 206 + Content-Range) and fault injection.
 */
export class TargetServerFixture {
  private server: Server | undefined;
  readonly requests: RequestLogEntry[] = [];
  /** Cut the connection after this many body bytes, for the next `cutCount` target responses. */
  cutAfterBytes = 0;
  cutCount = 0;
  /** Serve these bytes instead of the real target (a compromised mirror). */
  tampered = new Map<string, Buffer>();
  /** Answer every target request with this status (e.g. 503). */
  failTargetsWith: number | undefined;
  /** Answer the next `busyCount` target requests 503 with `Retry-After: busyRetryAfter`, as a control plane past ARTIFACT_MAX_STREAMS does. */
  busyCount = 0;
  busyRetryAfter = '1';
  baseUrl = '';

  constructor(
    private readonly repo: TufRepoFixture,
    private readonly credentials: Map<string, string>,
  ) {}

  get metadataUrl(): string {
    return `${this.baseUrl}/tuf/metadata`;
  }

  get targetsUrl(): string {
    return `${this.baseUrl}/tuf/targets`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private authorised(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return false;
    const [user, ...rest] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':');
    return user !== undefined && this.credentials.get(user) === rest.join(':');
  }

  private end(req: IncomingMessage, res: ServerResponse, status: number, body?: Buffer, headers: Record<string, string | number> = {}): void {
    this.requests.push({ path: req.url ?? '', range: req.headers.range, status, at: Date.now() });
    res.writeHead(status, headers);
    res.end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = decodeURIComponent((req.url ?? '').split('?')[0]!);
    if (!this.authorised(req)) return this.end(req, res, 401, Buffer.from('{"statusCode":401}'), { 'www-authenticate': 'Basic realm="fleetline"' });
    if (url.startsWith('/tuf/metadata/')) {
      const body = this.repo.metadata(url.slice('/tuf/metadata/'.length));
      return body ? this.end(req, res, 200, body, { 'content-type': 'application/json' }) : this.end(req, res, 404);
    }
    if (url.startsWith('/tuf/targets/')) {
      if (this.failTargetsWith) return this.end(req, res, this.failTargetsWith);
      if (this.busyCount > 0) {
        this.busyCount--;
        return this.end(req, res, 503, Buffer.from('{"statusCode":503,"code":"download-busy"}'), { 'retry-after': this.busyRetryAfter });
      }
      const path = url.slice('/tuf/targets/'.length);
      const bytes = this.tampered.get(path) ?? this.repo.target(path);
      if (!bytes) return this.end(req, res, 404);
      let start = 0;
      let status = 200;
      const headers: Record<string, string | number> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (m) {
        start = Number(m[1]);
        if (start >= bytes.length) return this.end(req, res, 416, undefined, { 'content-range': `bytes */${bytes.length}` });
        status = 206;
        headers['content-range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
      }
      const body = bytes.subarray(start);
      headers['content-length'] = body.length;
      this.requests.push({ path: url, range: req.headers.range, status, at: Date.now() });
      res.writeHead(status, headers);
      if (this.cutCount > 0 && this.cutAfterBytes < body.length) {
        this.cutCount--;
        // Send part of the body, then drop the TCP connection mid-response.
        res.write(body.subarray(0, this.cutAfterBytes), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.end(body);
      return;
    }
    this.end(req, res, 404);
  }
}
