import { createHash } from 'node:crypto';
import type { ArtifactRef, DesiredModel } from '@fleetline/protocol';
import type { StagedFile } from '../install/model-store.js';
import { UpdateFailure } from '../update/update-failure.js';
import { Backoff, sleep } from '../util/backoff.js';
import type { Semaphore } from '../util/semaphore.js';
import { decideDownloadRetry } from './download-retry.logic.js';
import { artifactFileName, basicAuth, consistentTargetUrl, type ArtifactDownloader, type FetchContext } from './downloader.js';

/** Failed attempts per artifact, as the real agent's resumable fetcher makes (busy answers aside). */
const MAX_ATTEMPTS = 6;
const MAX_BUSY_WAIT_MS = 60_000;
/** Failures worth asking the retry decision about: what the server answered, if anything. */
const retryable = new WeakMap<UpdateFailure, { status: number | undefined; retryAfter: string | undefined }>();

function networkFailure(timedOut: boolean, message: string): UpdateFailure {
  const failure = new UpdateFailure(timedOut ? 'download-timeout' : 'download-failed', message);
  if (!timedOut) retryable.set(failure, { status: undefined, retryAfter: undefined });
  return failure;
}

export interface HttpVerifyDownloaderOptions {
  deviceId: string;
  secret: string;
  targetsUrl: string;
  /** full: fetch and hash every byte; skip: trust the assignment (load tests of the control plane only). */
  mode?: 'full' | 'skip';
  /** Probability that a download fails (simulated flaky network), per assignment version. */
  failProbability?: (version: string) => number;
  random?: () => number;
  /** Shared limit on downloads in flight (keeps a simulator process under its file-descriptor budget). */
  limiter?: Semaphore;
}

/**
 * Downloader for simulated devices: really fetches each target over HTTP (with the device's Basic
 * auth, consistent-snapshot URL) and checks length + sha256 while streaming, but keeps no bytes.
 * No TUF metadata walk: simulated devices exercise the control plane, not the trust chain.
 */
export class HttpVerifyDownloader implements ArtifactDownloader {
  private readonly verified = new Set<string>();
  private readonly auth: string;

  constructor(private readonly opts: HttpVerifyDownloaderOptions) {
    this.auth = basicAuth(opts.deviceId, opts.secret);
  }

  async fetch(desired: DesiredModel, ctx: FetchContext): Promise<void> {
    if (this.opts.limiter) return this.opts.limiter.run(() => this.fetchAll(desired, ctx));
    return this.fetchAll(desired, ctx);
  }

  private async fetchAll(desired: DesiredModel, ctx: FetchContext): Promise<void> {
    const random = this.opts.random ?? Math.random;
    if (random() < (this.opts.failProbability?.(desired.version) ?? 0)) {
      throw new UpdateFailure('download-failed', 'simulated download failure');
    }
    const total = desired.artifacts.reduce((n, a) => n + a.length, 0);
    let done = 0;
    for (const a of desired.artifacts) {
      if (this.opts.mode === 'skip') {
        this.verified.add(a.sha256);
        continue;
      }
      // The same decision as a real device's (ResumableFetcher): connection errors, 5xx, 408 and
      // 429 are retried with backoff, and a busy answer waits its Retry-After without costing an
      // attempt, so a fleet-wide thundering herd on the artifact server does not fail the update.
      const backoff = new Backoff({ baseMs: 250, capMs: 10_000 });
      for (let failures = 0; ;) {
        try {
          await this.fetchOne(a, ctx, done, total);
          break;
        } catch (err: unknown) {
          const answer = err instanceof UpdateFailure && err.code === 'download-failed' ? retryable.get(err) : undefined;
          if (!answer || ctx.signal.aborted) throw err;
          const decision = decideDownloadRetry(
            { ...answer, failures, remainingMs: ctx.deadline - Date.now(), nowMs: Date.now(), jitterMs: backoff.next() },
            { maxAttempts: MAX_ATTEMPTS, maxWaitMs: MAX_BUSY_WAIT_MS },
          );
          if (!decision.retry) throw err;
          if (decision.counted) failures++;
          await sleep(decision.waitMs, ctx.signal).catch(() => undefined);
        }
      }
      this.verified.add(a.sha256);
      done += a.length;
    }
  }

  private async fetchOne(a: ArtifactRef, ctx: FetchContext, done: number, total: number): Promise<void> {
    const timeout = AbortSignal.timeout(Math.max(1, ctx.deadline - Date.now()));
    let res: Response;
    try {
      res = await fetch(consistentTargetUrl(this.opts.targetsUrl, a.targetPath, a.sha256), {
        headers: { authorization: this.auth },
        signal: AbortSignal.any([ctx.signal, timeout]),
      });
    } catch (err: unknown) {
      throw networkFailure(timeout.aborted, `GET ${a.targetPath}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      const failure = new UpdateFailure('download-failed', `GET ${a.targetPath}: HTTP ${res.status}`);
      retryable.set(failure, { status: res.status, retryAfter: res.headers.get('retry-after') ?? undefined });
      throw failure;
    }
    const hash = createHash('sha256');
    let length = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        length += chunk.length;
        if (length > a.length) throw new UpdateFailure('verification-failed', `${a.targetPath}: more than the declared ${a.length} bytes`);
        hash.update(chunk);
        ctx.onProgress?.({ bytes: done + length, total });
      }
    } catch (err: unknown) {
      if (err instanceof UpdateFailure) throw err;
      throw networkFailure(timeout.aborted, `${a.targetPath}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const sha = hash.digest('hex');
    if (length !== a.length || sha !== a.sha256) throw new UpdateFailure('verification-failed', `${a.targetPath}: got ${length} bytes sha256 ${sha}`);
  }

  async verify(desired: DesiredModel): Promise<StagedFile[]> {
    return desired.artifacts.map((a) => {
      if (!this.verified.has(a.sha256)) throw new UpdateFailure('verification-failed', `${a.targetPath} was not downloaded`);
      return { fileName: artifactFileName(a.targetPath), sha256: a.sha256, length: a.length };
    });
  }

  async discard(desired: DesiredModel): Promise<void> {
    for (const a of desired.artifacts) this.verified.delete(a.sha256);
  }
}
