import { Inject, Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { DEFAULT_TUF_BIN_COUNT } from '../infra/config/config.schema.js';
import { binOf, bitLengthOf } from './tuf-bins.js';

/** How long an answer is reused: a resumed download makes many ranged requests for one target. */
const CACHE_TTL_MS = 5_000;
const CACHE_MAX = 50_000;
/** Checks answered per query when a wave's devices all download at once. */
const LOOKUP_BATCH = 1_000;
/**
 * How long a check waits for others to share its query. A rollout wave sends thousands of devices
 * to download within seconds; one query each queued them all behind the replica's few pooled
 * connections, and the admin API's own queries waited in the same queue.
 */
const LOOKUP_LINGER_MS = 3;

interface AccessKey {
  deviceId: string;
  model: string;
  version: string;
}

/**
 * Which target files, and which hash bins of the signed metadata, a device may download (ARTIFACT_ACCESS). `assigned`: only versions of a model
 * it has as desired (what an operator or a rollout told it, rollbacks included), active or
 * previous (its last-known-good); `fleet`: any. Checks arriving together are answered by one
 * primary-key join on device_models, and answers are cached for a few seconds, so an unassigned
 * version stops being downloadable within CACHE_TTL_MS. A bin (docs/tuf.md "Hash bins") is readable
 * under `assigned` only when one of those versions has a target in it: a device sees the paths,
 * hashes and sizes of its own targets and of the few that share their bins, not the catalogue.
 */
@Injectable()
export class ArtifactAccessPolicy {
  private readonly cache = new Map<string, { allowed: boolean; until: number }>();
  private readonly loader = new DataLoader<AccessKey, boolean, string>((keys) => this.lookup(keys), {
    cache: false,
    maxBatchSize: LOOKUP_BATCH,
    batchScheduleFn: (run) => setTimeout(run, LOOKUP_LINGER_MS),
  });
  private readonly binCache = new Map<string, { bins: ReadonlySet<string>; until: number }>();
  private readonly binLoader = new DataLoader<string, ReadonlySet<string>, string>((ids) => this.lookupBins(ids), {
    cache: false,
    maxBatchSize: LOOKUP_BATCH,
    batchScheduleFn: (run) => setTimeout(run, LOOKUP_LINGER_MS),
  });

  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async mayDownload(deviceId: string, model: string, version: string, now = Date.now()): Promise<boolean> {
    if (this.config.artifactAccess === 'fleet') return true;
    const key = cacheKey({ deviceId, model, version });
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.allowed;
    const allowed = await this.loader.load({ deviceId, model, version });
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, { allowed, until: now + CACHE_TTL_MS });
    return allowed;
  }

  /**
   * May the device read this hash bin (`bins-0a`)? A device asks for a bin right after it was told
   * of a new assignment, so a bin missing from the cached set is looked up again before refusing.
   */
  async mayReadBin(deviceId: string, bin: string, now = Date.now()): Promise<boolean> {
    if (this.config.artifactAccess === 'fleet') return true;
    const hit = this.binCache.get(deviceId);
    if (hit && hit.until > now && hit.bins.has(bin)) return true;
    const bins = await this.binLoader.load(deviceId);
    if (this.binCache.size >= CACHE_MAX) this.binCache.clear();
    this.binCache.set(deviceId, { bins, until: now + CACHE_TTL_MS });
    return bins.has(bin);
  }

  private async lookupBins(deviceIds: readonly string[]): Promise<ReadonlySet<string>[]> {
    const bitLength = bitLengthOf(this.config.tufBinCount ?? DEFAULT_TUF_BIN_COUNT);
    const rows = (await this.dataSource.query(
      `SELECT k.i, a.target_path FROM unnest($1::text[]) WITH ORDINALITY AS k(device_id, i)
         JOIN device_models d ON d.device_id = k.device_id
         JOIN artifacts a ON a.model = d.model AND a.version IN (d.desired_version, d.active_version, d.previous_version)`,
      [[...deviceIds]],
    )) as { i: string | number; target_path: string }[];
    const bins = deviceIds.map(() => new Set<string>());
    for (const r of rows) bins[Number(r.i) - 1]!.add(binOf(r.target_path, bitLength));
    return bins;
  }

  private async lookup(keys: readonly AccessKey[]): Promise<boolean[]> {
    const rows = (await this.dataSource.query(
      `SELECT k.i FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(device_id, model, version, i)
         JOIN device_models d ON d.device_id = k.device_id AND d.model = k.model
        WHERE k.version IN (d.desired_version, d.active_version, d.previous_version)`,
      [keys.map((k) => k.deviceId), keys.map((k) => k.model), keys.map((k) => k.version)],
    )) as { i: string | number }[];
    const allowed = new Array<boolean>(keys.length).fill(false);
    for (const r of rows) allowed[Number(r.i) - 1] = true;
    return allowed;
  }
}

const cacheKey = (k: AccessKey): string => `${k.deviceId}\u0000${k.model}\u0000${k.version}`;
