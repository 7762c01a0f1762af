import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/** The part of a fetch() Response the agent reads (a global fetch Response is one too). */
export interface HttpResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** Streamed, never buffered: artifacts can be gigabytes. */
  readonly body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** The part of fetch() the agent uses. */
export type FetchFn = (url: string, init?: FetchInit) => Promise<HttpResponse>;

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

class NodeHttpResponse implements HttpResponse {
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };

  constructor(
    readonly status: number,
    raw: http.IncomingHttpHeaders,
    readonly body: ReadableStream<Uint8Array> | null,
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = {
      get: (name) => {
        const v = raw[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    };
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const chunks: Uint8Array[] = [];
    if (this.body) for await (const c of this.body as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
    const all = Buffer.concat(chunks);
    return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return Buffer.from(await this.arrayBuffer()).toString('utf8');
  }
}

/**
 * fetch() over node:http/https that verifies https:// servers against `ca` (PEM bundle), or the
 * system's trust store without one. Not the global fetch: its undici client (and the llhttp
 * WebAssembly it compiles) stays in memory once used, ≈ 8-11 MB of RSS measured for a device
 * agent that otherwise idles at a few tens of MB. Node's fetch cannot be given a CA either.
 */
export function fetchTrusting(ca: string | undefined): FetchFn {
  // One keep-alive pool per CA, like fetch's own.
  const agent = ca !== undefined ? new https.Agent({ ca, keepAlive: true }) : https.globalAgent;
  return (url, init = {}) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      if (!secure && target.protocol !== 'http:') return reject(new TypeError(`unsupported protocol in ${url}`));
      const method = (init.method ?? 'GET').toUpperCase();
      const request = (secure ? https : http).request(
        target,
        { method, headers: init.headers ?? {}, ...(init.signal ? { signal: init.signal } : {}), ...(secure ? { agent } : {}) },
        (res) => {
          const status = res.statusCode ?? 0;
          const noBody = NULL_BODY_STATUS.has(status) || method === 'HEAD';
          if (noBody) res.resume();
          resolve(new NodeHttpResponse(status, res.headers, noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>)));
        },
      );
      request.on('error', reject);
      request.end(init.body);
    });
}
