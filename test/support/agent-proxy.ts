import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A transparent HTTP reverse proxy in front of the control plane for agent end-to-end tests. It
 * forwards every request unchanged (including the Host header, so enrollment answers carry the
 * proxy's address and the agent's downloads come back through it), records what each artifact
 * request asked for and how many bytes it was served, and can throttle artifact downloads — the
 * control plane itself has no throttle, and a slow link is what makes a download interruptible.
 */

export interface TargetAccess {
  url: string;
  /** The request's Range header, if any. */
  range: string | undefined;
  status: number;
  /** Body bytes forwarded to the agent (counted as they pass, so a cut request counts what it got). */
  bytes: number;
}

export class AgentProxy {
  readonly targetRequests: TargetAccess[] = [];
  /** Bytes per second for artifact bodies; 0 = unthrottled. Changing it affects requests in flight. */
  bytesPerSecond = 0;
  /**
   * Answers a request itself instead of forwarding it when this returns a body (200, JSON): what an
   * attacker on the path, or holding a stolen key, would serve. Undefined: forward as usual.
   */
  replace: ((url: string) => string | undefined) | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(upstream: string): Promise<AgentProxy> {
    const target = new URL(upstream);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const proxy = new AgentProxy(server, `http://127.0.0.1:${port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.forward(target, req, res));
    return proxy;
  }

  private forward(target: URL, req: IncomingMessage, res: ServerResponse): void {
    const replaced = this.replace?.(req.url ?? '');
    if (replaced !== undefined) {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(replaced) });
      res.end(replaced);
      return;
    }
    const isTarget = (req.url ?? '').startsWith('/api/v1/tuf/targets/');
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!isTarget) {
        up.pipe(res);
        return;
      }
      const access: TargetAccess = { url: req.url ?? '', range: req.headers.range, status: up.statusCode ?? 0, bytes: 0 };
      this.targetRequests.push(access);
      void this.pump(up, res, access);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }

  /** Forwards an artifact body in slices, sleeping between them while a throttle is set. */
  private async pump(up: IncomingMessage, res: ServerResponse, access: TargetAccess): Promise<void> {
    try {
      for await (const chunk of up as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) {
          if (res.destroyed) return;
          const rate = this.bytesPerSecond;
          const slice = rate > 0 ? Math.max(1024, Math.floor(rate / 20)) : chunk.length;
          const part = chunk.subarray(offset, offset + slice);
          offset += part.length;
          if (!res.write(part)) {
            await new Promise<void>((resolve) => {
              const done = (): void => {
                res.off('drain', done);
                res.off('close', done);
                resolve();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          }
          access.bytes += part.length;
          if (rate > 0) await new Promise((resolve) => setTimeout(resolve, (part.length / rate) * 1000));
        }
      }
      res.end();
    } catch {
      res.destroy();
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
