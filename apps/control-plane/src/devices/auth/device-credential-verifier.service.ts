import { Injectable, Logger } from '@nestjs/common';
import { isValidDeviceId } from '@fleetline/protocol';
import { secretMatches } from '../../access/secret.js';
import { CredentialCache } from './credential-cache.js';
import { DeviceCredentialsRepository } from './device-credentials.repository.js';

/** Positive results are trusted this long; decommission evicts at once on this replica. */
export const CREDENTIAL_CACHE_TTL_MS = 30_000;
const CREDENTIAL_CACHE_MAX = 100_000;
/** Ids looked up per query when many devices connect at once. */
const LOOKUP_BATCH = 1000;
/**
 * How long a lookup waits for others to share its query. A connect storm arrives spread over
 * event-loop turns, so batching per turn alone gave one query per 1-3 devices (a profile of 8,000
 * connects spent more time writing queries to PostgreSQL than in the broker); a few ms gather tens.
 */
const LOOKUP_LINGER_MS = 3;

/**
 * Checks a device's secret for the broker authenticator and DeviceAuthGuard. Concurrent checks
 * are coalesced: every id asked for within LOOKUP_LINGER_MS is looked up in one query, so a
 * fleet reconnecting at once costs a few queries rather than one per device; positive answers
 * are cached briefly.
 */
@Injectable()
export class DeviceCredentialVerifier {
  private readonly logger = new Logger('DeviceCredentials');
  private readonly cache = new CredentialCache(CREDENTIAL_CACHE_TTL_MS, CREDENTIAL_CACHE_MAX);
  private waiting = new Map<string, { resolve: (hash: string | undefined) => void; reject: (err: unknown) => void }[]>();
  private scheduled = false;
  /**
   * Ids evicted while a lookup of theirs was in flight: that lookup must not re-cache a dead
   * credential. Per id, so enrolling thousands of devices does not stop the cache for everyone.
   */
  private readonly evictedInFlight = new Set<string>();
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly credentials: DeviceCredentialsRepository) {}

  async verify(deviceId: string, secret: string | undefined): Promise<boolean> {
    if (!secret || !isValidDeviceId(deviceId)) return false;
    const cached = this.cache.get(deviceId);
    if (cached !== undefined && secretMatches(secret, cached)) return true;
    this.inFlight.set(deviceId, (this.inFlight.get(deviceId) ?? 0) + 1);
    let hash: string | undefined;
    let evicted: boolean;
    try {
      hash = await this.lookup(deviceId);
    } finally {
      evicted = this.evictedInFlight.has(deviceId);
      const left = this.inFlight.get(deviceId)! - 1;
      if (left > 0) this.inFlight.set(deviceId, left);
      else {
        this.inFlight.delete(deviceId);
        this.evictedInFlight.delete(deviceId);
      }
    }
    if (hash === undefined || !secretMatches(secret, hash)) return false;
    if (!evicted) this.cache.set(deviceId, hash);
    return true;
  }

  /** Forgets a device at once (decommission, re-enrollment). */
  evict(deviceId: string): void {
    this.cache.delete(deviceId);
    if (this.inFlight.has(deviceId)) this.evictedInFlight.add(deviceId);
  }

  private lookup(deviceId: string): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(deviceId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(deviceId, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => void this.flush(), LOOKUP_LINGER_MS);
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.waiting;
    this.waiting = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += LOOKUP_BATCH) {
      const chunk = ids.slice(i, i + LOOKUP_BATCH);
      try {
        const hashes = await this.credentials.credentialHashes(chunk);
        for (const id of chunk) for (const w of batch.get(id) ?? []) w.resolve(hashes.get(id));
      } catch (err) {
        this.logger.error(`credential lookup failed: ${String(err)}`);
        for (const id of chunk) for (const w of batch.get(id) ?? []) w.reject(err);
      }
    }
  }
}
