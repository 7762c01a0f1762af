import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { CliError, ExitCode } from './exit-codes.js';
import type { Connection } from './config.js';

/** The control plane's error answer: `{ statusCode, code, message, details? }`. */
export interface ApiErrorBody {
  statusCode?: number;
  code?: string;
  message?: string | string[];
  details?: unknown;
}

/** A 4xx (exit 2) or 5xx (exit 3) answer, carrying the API's code and message. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    details?: unknown,
  ) {
    super(`${code}: ${message} (HTTP ${status})`, status >= 500 ? ExitCode.ServerError : ExitCode.ApiError, details);
    this.name = 'ApiError';
  }
}

export type QueryValue = string | number | boolean | undefined | null;

export interface RequestOptions {
  query?: Record<string, QueryValue | QueryValue[]>;
  json?: unknown;
  /** A streamed body (multipart uploads); sent with `duplex: 'half'` so it is never buffered. */
  stream?: { body: Readable; contentType: string; contentLength?: number };
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Thin fetch wrapper for the admin API: bearer key, JSON in and out, errors mapped to exit codes. */
export class ApiClient {
  constructor(
    private readonly connection: Connection,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  get server(): string {
    return this.connection.server;
  }

  url(path: string, query?: RequestOptions['query']): string {
    const url = new URL(path, `${this.connection.server}/`);
    for (const [name, value] of Object.entries(query ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (v !== undefined && v !== null) url.searchParams.append(name, String(v));
      }
    }
    return url.toString();
  }

  async get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, { query });
  }

  async post<T>(path: string, json?: unknown): Promise<T> {
    return this.request<T>('POST', path, { json: json ?? {} });
  }

  /** Sends a request and returns the raw response for a successful status (streams: SSE). */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.connection.key}`, ...options.headers };
    let body: RequestInit['body'];
    let duplex: 'half' | undefined;
    if (options.stream) {
      headers['content-type'] = options.stream.contentType;
      if (options.stream.contentLength !== undefined) headers['content-length'] = String(options.stream.contentLength);
      body = ReadableStream.toWeb(options.stream.body) as unknown as RequestInit['body'];
      duplex = 'half';
    } else if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(path, options.query), {
        method,
        headers,
        body,
        signal: options.signal,
        ...(duplex ? { duplex } : {}),
      } as RequestInit);
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw new CliError(`cannot reach ${this.connection.server}: ${describeFetchError(err)}`, ExitCode.ServerError);
    }
    if (!response.ok) throw await apiErrorFrom(response);
    return response;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.raw(method, path, options);
    const text = await response.text();
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`server answered ${method} ${path} with non-JSON content`, ExitCode.ServerError);
    }
  }
}

export async function apiErrorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let body: ApiErrorBody = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) body = parsed as ApiErrorBody;
  } catch {
    body = { message: text.slice(0, 500) || response.statusText };
  }
  const message = Array.isArray(body.message) ? body.message.join('; ') : (body.message ?? response.statusText);
  return new ApiError(response.status, body.code ?? `http-${response.status}`, message, body.details);
}

/** undici hides the useful part (ECONNREFUSED, ENOTFOUND) in `cause`. */
function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return `${cause.message}`;
    return err.message;
  }
  return String(err);
}
