import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/** The part of fetch() the agent uses. */
export type FetchFn = (url: string, init?: FetchInit) => Promise<Response>;

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * fetch() that verifies https:// servers against `ca` (PEM bundle) instead of the system's trust
 * store; without a CA it is the global fetch. Node's fetch cannot be given a CA without the
 * undici package's Agent, so with one the request goes through node:https and the answer is
 * wrapped in a standard Response (streamed, not buffered: artifacts can be gigabytes).
 */
export function fetchTrusting(ca: string | undefined): FetchFn {
  if (ca === undefined) return (url, init) => fetch(url, init);
  // One keep-alive pool per CA, like fetch's own.
  const agent = new https.Agent({ ca, keepAlive: true });
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      if (!secure && target.protocol !== 'http:') return reject(new TypeError(`unsupported protocol in ${url}`));
      const method = (init.method ?? 'GET').toUpperCase();
      const request = (secure ? https : http).request(
        target,
        { method, headers: init.headers ?? {}, ...(init.signal ? { signal: init.signal } : {}), ...(secure ? { agent } : {}) },
        (res) => {
          const status = res.statusCode ?? 0;
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value === undefined) continue;
            for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
          }
          const noBody = NULL_BODY_STATUS.has(status) || method === 'HEAD';
          if (noBody) res.resume();
          try {
            resolve(
              new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
                status,
                statusText: res.statusMessage ?? '',
                headers,
              }),
            );
          } catch (err) {
            res.destroy();
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        },
      );
      request.on('error', reject);
      request.end(init.body);
    });
}
