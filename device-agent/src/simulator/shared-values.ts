import type { DeviceCredentials } from '@fleetline/protocol';
import type { StagedFile } from '../install/model-store.js';
import type { ArtifactDownloader, FetchContext } from '../download/downloader.js';
import type { DesiredModel } from '@fleetline/protocol';

/**
 * Equal strings that every simulated device of a process receives (the pinned TUF root, broker and
 * download URLs) arrive as separate copies, one per parsed enrollment answer; the pinned root
 * alone is a few KB. Keeping one copy per distinct value changes no byte a device sends or checks.
 * Bounded, so unexpected per-device values cannot grow it without limit.
 */
export class InternPool {
  private readonly strings = new Map<string, string>();
  private readonly lists = new Map<string, readonly string[]>();

  constructor(private readonly limit = 256) {}

  string(value: string): string {
    const known = this.strings.get(value);
    if (known !== undefined) return known;
    if (this.strings.size < this.limit) this.strings.set(value, value);
    return value;
  }

  list(values: readonly string[]): readonly string[] {
    const key = values.join('\n');
    const known = this.lists.get(key);
    if (known !== undefined) return known;
    const shared = values.map((v) => this.string(v));
    if (this.lists.size < this.limit) this.lists.set(key, shared);
    return shared;
  }
}

/** The same credentials, with the values devices share held once (see InternPool). */
export function shareCredentials(creds: DeviceCredentials, pool: InternPool): DeviceCredentials {
  const id = creds.deviceId;
  return {
    deviceId: id,
    secret: creds.secret,
    mqtt: {
      url: pool.string(creds.mqtt.url),
      ...(creds.mqtt.urls ? { urls: pool.list(creds.mqtt.urls) as string[] } : {}),
      clientId: creds.mqtt.clientId === id ? id : creds.mqtt.clientId,
      username: creds.mqtt.username === id ? id : creds.mqtt.username,
    },
    http: { baseUrl: pool.string(creds.http.baseUrl) },
    tuf: { root: pool.string(creds.tuf.root), metadataUrl: pool.string(creds.tuf.metadataUrl), targetsUrl: pool.string(creds.tuf.targetsUrl) },
    protocolVersion: creds.protocolVersion,
  };
}

/**
 * Creates the real downloader on first use: most simulated devices sit idle between rollouts, and
 * an idle device then holds one pointer instead of a downloader with its options, auth header
 * and bookkeeping.
 */
export class LazyDownloader implements ArtifactDownloader {
  private inner: ArtifactDownloader | undefined;

  constructor(
    private readonly creds: DeviceCredentials,
    private readonly make: (creds: DeviceCredentials) => ArtifactDownloader,
  ) {}

  private get downloader(): ArtifactDownloader {
    this.inner ??= this.make(this.creds);
    return this.inner;
  }

  fetch(desired: DesiredModel, ctx: FetchContext): Promise<void> {
    return this.downloader.fetch(desired, ctx);
  }

  verify(desired: DesiredModel): Promise<StagedFile[]> {
    return this.downloader.verify(desired);
  }

  discard(desired: DesiredModel): Promise<void> {
    // Nothing was ever fetched, so there is nothing to drop.
    return this.inner ? this.inner.discard(desired) : Promise.resolve();
  }
}
