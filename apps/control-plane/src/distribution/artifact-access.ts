import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';

/** How long an answer is reused: a resumed download makes many ranged requests for one target. */
const CACHE_TTL_MS = 5_000;
const CACHE_MAX = 50_000;

/**
 * Which target files a device may download (ARTIFACT_ACCESS). `assigned`: only versions of a model
 * it has as desired (what an operator or a rollout told it, rollbacks included), active or
 * previous (its last-known-good); `fleet`: any. One primary-key lookup on device_models per
 * (device, model, version), answers cached for a few seconds, so an unassigned version stops being
 * downloadable within CACHE_TTL_MS.
 */
@Injectable()
export class ArtifactAccessPolicy {
  private readonly cache = new Map<string, { allowed: boolean; until: number }>();

  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async mayDownload(deviceId: string, model: string, version: string, now = Date.now()): Promise<boolean> {
    if (this.config.artifactAccess === 'fleet') return true;
    const key = `${deviceId}\u0000${model}\u0000${version}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.allowed;
    const rows = (await this.dataSource.query(
      `SELECT 1 FROM device_models
        WHERE device_id = $1 AND model = $2 AND $3 IN (desired_version, active_version, previous_version)`,
      [deviceId, model, version],
    )) as unknown[];
    const allowed = rows.length > 0;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, { allowed, until: now + CACHE_TTL_MS });
    return allowed;
  }
}
