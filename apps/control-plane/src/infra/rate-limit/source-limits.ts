import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { RateLimitedLog } from '../logging/rate-limited-log.js';
import type { BucketPolicy } from './gcra.js';
import { RedisLimitStore } from './redis-limit-store.js';
import { TokenBuckets } from './token-bucket.js';

/** What a refusal was for; the only label of fleetline_rate_limited_total, so its series are bounded. */
export type LimitName = 'enroll' | 'device_auth_http' | 'device_auth_mqtt';
export const LIMIT_NAMES: readonly LimitName[] = ['enroll', 'device_auth_http', 'device_auth_mqtt'];

/** The buckets a source has: enrollments, and failed device authentications (HTTP and MQTT share one). */
type Bucket = 'enroll' | 'auth';

/**
 * The per-source-address limits (see docs/security.md, "Enrollment and device identity"):
 * enrollment requests, and failed device authentications over HTTP and MQTT, which share one
 * bucket per address so an attacker cannot double its guesses by switching transport.
 *
 * With REDIS_URL the buckets live in Redis and every replica takes from the same ones, so N
 * replicas allow the configured rate, not N times it. Without it (one process) they live in
 * memory. When Redis cannot answer a check (down, or slower than the store's timeout) the check
 * falls back to this replica's own in-memory buckets: the limit degrades to per-replica, as it
 * was before Redis, rather than turning off (fail open) or refusing every device (fail closed);
 * each such check is counted (fleetline_rate_limit_store_errors_total) and logged, rate-limited.
 */
@Injectable()
export class SourceLimits implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('SourceLimits');
  private readonly log = new RateLimitedLog(this.logger, 30_000);
  private readonly policies: Record<Bucket, BucketPolicy>;
  private readonly local: Record<Bucket, TokenBuckets>;
  private readonly shared?: RedisLimitStore;
  private readonly limited = new Map<LimitName, number>(LIMIT_NAMES.map((n) => [n, 0]));
  /** Checks the shared store could not answer (each answered from this replica's buckets instead). */
  storeErrors = 0;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.policies = { enroll: config.rateLimits.enroll, auth: config.rateLimits.deviceAuthFailures };
    this.local = { enroll: new TokenBuckets(this.policies.enroll), auth: new TokenBuckets(this.policies.auth) };
    const shared = config.rateLimits.shared;
    if (shared) this.shared = new RedisLimitStore(shared.redisUrl, shared.keyPrefix);
  }

  async onModuleInit(): Promise<void> {
    if (!this.shared) return;
    // Not a start-up condition: until Redis answers, checks use this replica's buckets.
    await this.shared
      .connect((err) => this.log.warn('redis', `rate-limit store: ${err.message}`))
      .catch((err: unknown) => this.logger.warn(`rate-limit store not reachable yet, limits are per replica until it is: ${String(err)}`));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.shared?.close();
  }

  /** Takes an enrollment request from `source`: 0 to go on, else milliseconds to wait (counted). */
  async takeEnroll(source: string): Promise<number> {
    return this.count('enroll', await this.take('enroll', source));
  }

  /**
   * Before checking a device's credentials: 0 to go on, else milliseconds until `source` may try
   * again (counted under `limit`). A source that used up its failures is refused even with good
   * credentials until the bucket refills, or guessing would stay free.
   */
  async checkDeviceAuth(source: string, limit: 'device_auth_http' | 'device_auth_mqtt'): Promise<number> {
    return this.count(limit, await this.peek('auth', source));
  }

  /** A failed device authentication from `source` takes one token. Never rejects. */
  async deviceAuthFailed(source: string): Promise<void> {
    await this.take('auth', source);
  }

  limitedCounts(): ReadonlyMap<LimitName, number> {
    return this.limited;
  }

  private async take(bucket: Bucket, source: string): Promise<number> {
    const local = this.local[bucket];
    if (!this.shared || !local.enabled) return local.take(source);
    try {
      return await this.shared.take(bucket, source, this.policies[bucket]);
    } catch (err) {
      this.storeFailed(err);
      return local.take(source);
    }
  }

  private async peek(bucket: Bucket, source: string): Promise<number> {
    const local = this.local[bucket];
    if (!this.shared || !local.enabled) return local.peek(source);
    try {
      return await this.shared.peek(bucket, source, this.policies[bucket]);
    } catch (err) {
      this.storeFailed(err);
      return local.peek(source);
    }
  }

  private storeFailed(err: unknown): void {
    this.storeErrors++;
    this.log.warn('check', `rate-limit store unavailable, limiting per replica: ${err instanceof Error ? err.message : String(err)}`);
  }

  private count(limit: LimitName, waitMs: number): number {
    if (waitMs > 0) this.limited.set(limit, (this.limited.get(limit) ?? 0) + 1);
    return waitMs;
  }
}

/** The address a request's limits are kept under: Express' `req.ip` (HTTP_TRUST_PROXY decides whether X-Forwarded-For counts), else the socket peer. */
export function sourceAddress(request: IncomingMessage & { ip?: string }): string {
  return request.ip ?? request.socket.remoteAddress ?? 'unknown';
}
