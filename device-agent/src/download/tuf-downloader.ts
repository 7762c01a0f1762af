import { mkdir, rm, statfs, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Updater, type TargetFile } from 'tuf-js';
import { DownloadHTTPError, DownloadLengthMismatchError } from 'tuf-js/dist/error.js';
import type { ArtifactRef, DesiredModel } from '@fleetline/protocol';
import { checkTargetBinding } from '../reconcile/target-binding.js';
import { UpdateFailure } from '../update/update-failure.js';
import { verifyFile, type StagedFile } from '../install/model-store.js';
import { artifactFileName, basicAuth, type ArtifactDownloader, type FetchContext } from './downloader.js';
import { ResumableFetcher } from './resumable-fetcher.js';
import { fetchTrusting } from '../util/tls-fetch.js';

export interface TufDownloaderOptions {
  /** PEM CA bundle an https:// repository must chain to; unset: the system's trust store. */
  ca?: string;
  deviceId: string;
  secret: string;
  metadataUrl: string;
  targetsUrl: string;
  /** Holds the pinned root.json (and the newer metadata tuf-js persists). */
  metadataDir: string;
  /** Partial and verified-but-not-installed files. */
  downloadDir: string;
  /** Bytes that must stay free on the data filesystem besides the download itself. */
  reserveBytes?: number;
}

/**
 * Downloads through the tuf-js Updater (TUF client workflow §5.3-§5.7: root rotation, timestamp,
 * snapshot, targets, then the target with hash/length checks), using the resumable, authenticated
 * fetcher. The signed target info must agree with the assignment's sha256/length, so the control
 * plane cannot point a device at bytes the repository never signed.
 */
export class TufDownloader implements ArtifactDownloader {
  private readonly fetcher: ResumableFetcher;

  constructor(private readonly opts: TufDownloaderOptions) {
    this.fetcher = new ResumableFetcher({
      authorization: basicAuth(opts.deviceId, opts.secret),
      // Normalised the way tuf-js builds target URLs (WHATWG URL), so the prefix test matches.
      targetsUrl: new URL(opts.targetsUrl.endsWith('/') ? opts.targetsUrl : `${opts.targetsUrl}/`).toString().replace(/\/+$/, ''),
      downloadDir: join(opts.downloadDir, 'partial'),
      fetch: fetchTrusting(opts.ca),
    });
  }

  private stagedPath(a: ArtifactRef): string {
    return join(this.opts.downloadDir, `${a.sha256}.${artifactFileName(a.targetPath)}`);
  }

  private newUpdater(): Updater {
    // A fresh Updater per update: each refresh starts from the persisted trusted metadata (TUF §5.2).
    return new Updater({
      metadataDir: this.opts.metadataDir,
      metadataBaseUrl: this.opts.metadataUrl,
      targetBaseUrl: this.opts.targetsUrl,
      fetcher: this.fetcher,
    });
  }

  async fetch(desired: DesiredModel, ctx: FetchContext): Promise<void> {
    // The reconciler refuses such an assignment first; checked again here so no caller of the
    // downloader can fetch another model version's signed target under this one's name.
    const binding = checkTargetBinding(desired);
    if (!binding.ok) throw new UpdateFailure(binding.code, binding.message);
    await mkdir(this.opts.downloadDir, { recursive: true });
    const updater = this.newUpdater();
    try {
      await updater.refresh();
    } catch (err: unknown) {
      throw classify(err, 'TUF metadata refresh failed');
    }
    const total = desired.artifacts.reduce((n, a) => n + a.length, 0);
    let done = 0;
    for (const artifact of desired.artifacts) {
      let info: TargetFile | undefined;
      try {
        info = await updater.getTargetInfo(artifact.targetPath);
      } catch (err: unknown) {
        throw classify(err, `TUF target info for ${artifact.targetPath}`);
      }
      if (!info) throw new UpdateFailure('verification-failed', `${artifact.targetPath} is not in the signed targets metadata`);
      if (info.length !== artifact.length || info.hashes.sha256 !== artifact.sha256) {
        throw new UpdateFailure('verification-failed', `assignment for ${artifact.targetPath} does not match the signed targets metadata`);
      }
      const staged = this.stagedPath(artifact);
      if ((await verifyFile(staged, artifact.length, artifact.sha256)) === null) {
        done += artifact.length;
        continue;
      }
      await this.ensureDiskSpace(artifact.length);
      const base = done;
      this.fetcher.scope = { deadline: ctx.deadline, signal: ctx.signal, onProgress: (bytes) => ctx.onProgress?.({ bytes: base + bytes, total }) };
      try {
        await updater.downloadTarget(info, staged);
      } catch (err: unknown) {
        await rm(staged, { force: true });
        throw classify(err, `download of ${artifact.targetPath}`);
      } finally {
        this.fetcher.scope = undefined;
      }
      done += artifact.length;
      ctx.onProgress?.({ bytes: done, total });
    }
  }

  private async ensureDiskSpace(needed: number): Promise<void> {
    const s = await statfs(this.opts.downloadDir);
    const free = Number(s.bavail) * Number(s.bsize);
    // Staged + installed copy (a hard link when possible, but plan for a copy) plus a reserve.
    const want = needed * 2 + (this.opts.reserveBytes ?? 64 * 1024 * 1024);
    if (free < want) throw new UpdateFailure('insufficient-disk', `${free} bytes free, ${want} needed`);
  }

  async verify(desired: DesiredModel): Promise<StagedFile[]> {
    const files: StagedFile[] = [];
    for (const a of desired.artifacts) {
      const path = this.stagedPath(a);
      const problem = await verifyFile(path, a.length, a.sha256);
      if (problem !== null) {
        await rm(path, { force: true });
        throw new UpdateFailure('verification-failed', `${a.targetPath}: ${problem}`);
      }
      files.push({ fileName: artifactFileName(a.targetPath), sha256: a.sha256, length: a.length, path });
    }
    return files;
  }

  async discard(desired: DesiredModel): Promise<void> {
    for (const a of desired.artifacts) await rm(this.stagedPath(a), { force: true });
    const partialDir = join(this.opts.downloadDir, 'partial');
    const names = await readdir(partialDir).catch(() => [] as string[]);
    for (const a of desired.artifacts) {
      for (const n of names) if (n.includes(a.sha256)) await rm(join(partialDir, n), { force: true });
    }
  }
}

/** Maps tuf-js and network errors to failure codes: signature/hash/length problems are permanent. */
function classify(err: unknown, context: string): UpdateFailure {
  if (err instanceof UpdateFailure) return err;
  const message = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof DownloadHTTPError) return new UpdateFailure('download-failed', message, { cause: err });
  if (err instanceof DownloadLengthMismatchError) return new UpdateFailure('verification-failed', message, { cause: err });
  const name = err instanceof Error ? err.constructor.name : '';
  if (/Signature|Unsigned|BadVersion|Expired|LengthOrHash|Repository|Value|Length|Hash/i.test(name)) {
    return new UpdateFailure('verification-failed', message, { cause: err });
  }
  return new UpdateFailure('download-failed', message, { cause: err });
}
