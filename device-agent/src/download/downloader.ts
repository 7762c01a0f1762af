import type { DesiredModel } from '@fleetline/protocol';
import type { StagedFile } from '../install/model-store.js';

export interface DownloadProgress {
  bytes: number;
  total: number;
}

export interface FetchContext {
  signal: AbortSignal;
  /** Absolute time (ms since epoch) after which the download gives up with download-timeout. */
  deadline: number;
  onProgress?: (p: DownloadProgress) => void;
}

/**
 * Gets an assignment's artifacts into the download area and proves they are the signed bytes.
 * Failures throw UpdateFailure with download-failed, download-timeout, verification-failed or
 * insufficient-disk.
 */
export interface ArtifactDownloader {
  /** `downloading`: fetch every artifact (resuming partial files). */
  fetch(desired: DesiredModel, ctx: FetchContext): Promise<void>;
  /** `verifying`: full length + sha256 check of the staged files; nothing leaves the download area unverified. */
  verify(desired: DesiredModel): Promise<StagedFile[]>;
  /** Drops staged and partial files of an assignment (after commit, abandon or failure). */
  discard(desired: DesiredModel): Promise<void>;
}

export function artifactFileName(targetPath: string): string {
  return targetPath.split('/').pop() ?? targetPath;
}

/**
 * TUF §5.7.3: with consistent snapshots a target is fetched as `{dir}/{hash}.{basename}` relative
 * to the targets base URL.
 */
export function consistentTargetUrl(targetsUrl: string, targetPath: string, sha256: string): string {
  const parts = targetPath.split('/');
  const base = parts.pop() ?? targetPath;
  const rel = [...parts, `${sha256}.${base}`].map(encodeURIComponent).join('/');
  return `${targetsUrl.replace(/\/+$/, '')}/${rel}`;
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
