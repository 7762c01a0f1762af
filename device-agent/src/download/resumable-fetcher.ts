import { open, stat, truncate, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError, DownloadLengthMismatchError } from 'tuf-js/dist/error.js';
import { Backoff, sleep } from '../util/backoff.js';
import { decideDownloadRetry } from './download-retry.logic.js';
import { isErrnoCode } from '../storage/atomic-file.js';
import { UpdateFailure } from '../update/update-failure.js';
import { fetchTrusting, type FetchFn } from '../util/tls-fetch.js';

export interface ResumableFetcherOptions {
  authorization: string;
  /** Requests under this prefix are targets: resumable, kept under `downloadDir`. */
  targetsUrl: string;
  downloadDir: string;
  /** Per-request inactivity/overall timeout for metadata requests. */
  metadataTimeoutMs?: number;
  /** Max failed attempts per target within one fetch call (busy answers with Retry-After do not count). */
  maxAttempts?: number;
  backoff?: Backoff;
  /** Makes the requests (fetchTrusting: verifies https:// against the device's CA). */
  fetch?: FetchFn;
}

/** Most of a busy answer's Retry-After that is believed. */
const MAX_BUSY_WAIT_MS = 60_000;

/** A refused target request, with what the server said about coming back. */
class TargetRequestError extends DownloadHTTPError {
  constructor(
    message: string,
    statusCode: number,
    readonly retryAfter: string | undefined,
  ) {
    super(message, statusCode);
  }
}

/** Per-download settings the TUF downloader sets before asking tuf-js for a target. */
export interface TargetFetchScope {
  deadline: number;
  signal: AbortSignal;
  onProgress?: (bytes: number, total: number) => void;
}

/**
 * tuf-js fetcher with HTTP Basic auth on every request and resumable target downloads.
 * Targets are streamed into `{downloadDir}/{name}.part`; after a cut connection or an agent
 * restart the download continues with `Range: bytes=N-` (RFC 9110 §14.2). The file never grows
 * past the length the signed targets metadata declares (tuf-js passes it as maxLength), and
 * tuf-js verifies hash and length before the bytes are copied out.
 */
export class ResumableFetcher extends BaseFetcher {
  scope: TargetFetchScope | undefined;
  private readonly maxAttempts: number;
  private readonly fetchFn: FetchFn;

  constructor(private readonly opts: ResumableFetcherOptions) {
    super();
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.fetchFn = opts.fetch ?? fetchTrusting(undefined);
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await this.fetchFn(url, {
      headers: { authorization: this.opts.authorization },
      signal: AbortSignal.timeout(this.opts.metadataTimeoutMs ?? 30_000),
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }

  override async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    if (!url.startsWith(this.opts.targetsUrl)) return super.downloadFile(url, maxLength, handler);
    await mkdir(this.opts.downloadDir, { recursive: true });
    const name = decodeURIComponent(url.slice(this.opts.targetsUrl.length)).replace(/^\/+/, '').replace(/\//g, '__');
    const partial = join(this.opts.downloadDir, `${name}.part`);
    await this.downloadResumable(url, partial, maxLength);
    try {
      const result = await handler(partial);
      await rm(partial, { force: true });
      return result;
    } catch (err: unknown) {
      // Bytes that fail verification must never be resumed from.
      await rm(partial, { force: true });
      throw err;
    }
  }

  private async currentSize(path: string): Promise<number> {
    try {
      return (await stat(path)).size;
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return 0;
      throw err;
    }
  }

  private async downloadResumable(url: string, partial: string, length: number): Promise<void> {
    const scope = this.scope ?? { deadline: Date.now() + 3_600_000, signal: new AbortController().signal };
    const backoff = this.opts.backoff ?? new Backoff({ baseMs: 250, capMs: 10_000 });
    let failures = 0;
    for (;;) {
      let offset = await this.currentSize(partial);
      if (offset > length) {
        await truncate(partial, 0);
        offset = 0;
      }
      if (offset === length) return;
      try {
        await this.fetchRange(url, partial, offset, length, scope);
        if ((await this.currentSize(partial)) === length) return;
        throw new Error('connection closed before the declared length was received');
      } catch (err: unknown) {
        if (err instanceof UpdateFailure) throw err;
        if (err instanceof DownloadLengthMismatchError) {
          await rm(partial, { force: true });
          throw new UpdateFailure('verification-failed', err.message, { cause: err });
        }
        if (scope.signal.aborted) throw new UpdateFailure('download-failed', 'download aborted', { cause: err });
        const decision = decideDownloadRetry(
          {
            status: err instanceof DownloadHTTPError ? err.statusCode : undefined,
            retryAfter: err instanceof TargetRequestError ? err.retryAfter : undefined,
            failures,
            remainingMs: scope.deadline - Date.now(),
            nowMs: Date.now(),
            jitterMs: backoff.next(),
          },
          { maxAttempts: this.maxAttempts, maxWaitMs: MAX_BUSY_WAIT_MS },
        );
        if (!decision.retry) {
          if (decision.reason === 'refused') throw err;
          if (decision.reason === 'out-of-time') {
            throw new UpdateFailure('download-timeout', `download deadline passed after ${offset} of ${length} bytes`, { cause: err });
          }
          throw new UpdateFailure('download-failed', `download failed after ${failures + 1} attempts: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
        }
        if (decision.counted) failures++;
        await sleep(decision.waitMs, scope.signal).catch(() => undefined);
      }
    }
  }

  private async fetchRange(url: string, partial: string, offset: number, length: number, scope: TargetFetchScope): Promise<void> {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    scope.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(), Math.max(0, scope.deadline - Date.now()));
    try {
      const headers: Record<string, string> = { authorization: this.opts.authorization };
      if (offset > 0) headers.range = `bytes=${offset}-`;
      const res = await this.fetchFn(url, { headers, signal: controller.signal });
      let start = 0;
      if (res.status === 206) {
        // RFC 9110 §14.4: Content-Range: bytes first-last/complete. Refuse a range we did not ask for.
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== offset) {
          await res.body?.cancel();
          await truncate(partial, 0);
          throw new Error(`unexpected Content-Range ${res.headers.get('content-range')}`);
        }
        start = offset;
      } else if (res.status === 416) {
        // Our partial file does not fit the resource: start over.
        await res.body?.cancel();
        await truncate(partial, 0);
        throw new Error('range not satisfiable; restarting download');
      } else if (res.status !== 200) {
        await res.body?.cancel();
        throw new TargetRequestError(`GET ${url}: HTTP ${res.status}`, res.status, res.headers.get('retry-after') ?? undefined);
      }
      if (!res.body) throw new Error('response without body');
      // 200 = the server ignored the Range: rewrite from the start.
      const fh = await open(partial, start === 0 ? 'w' : 'a', 0o600);
      let written = start;
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          if (written + chunk.length > length) {
            throw new DownloadLengthMismatchError(`server sent more than the declared ${length} bytes`);
          }
          await fh.write(chunk);
          written += chunk.length;
          scope.onProgress?.(written, length);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
    } finally {
      clearTimeout(timer);
      scope.signal.removeEventListener('abort', onAbort);
    }
  }
}
