import type { DesiredModel } from '@fleetline/protocol';
import type { StagedFile } from '../install/model-store.js';
import type { ArtifactDownloader, FetchContext } from './downloader.js';

/**
 * Builds the real downloader on first use. tuf-js and its crypto are imported only when an
 * update first needs them, so an agent that has nothing to download never loads them.
 */
export class LazyDownloader implements ArtifactDownloader {
  private loading: Promise<ArtifactDownloader> | undefined;

  constructor(private readonly load: () => Promise<ArtifactDownloader>) {}

  private get(): Promise<ArtifactDownloader> {
    this.loading ??= this.load().catch((err: unknown) => {
      this.loading = undefined; // a failed import is retried by the next update attempt
      throw err;
    });
    return this.loading;
  }

  async fetch(desired: DesiredModel, ctx: FetchContext): Promise<void> {
    return (await this.get()).fetch(desired, ctx);
  }

  async verify(desired: DesiredModel): Promise<StagedFile[]> {
    return (await this.get()).verify(desired);
  }

  async discard(desired: DesiredModel): Promise<void> {
    return (await this.get()).discard(desired);
  }
}
