import type { IncomingMessage } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { TokenBuckets } from './token-bucket.js';

/** What a refusal was for; the only label of fleetline_rate_limited_total, so its series are bounded. */
export type LimitName = 'enroll' | 'device_auth_http' | 'device_auth_mqtt';
export const LIMIT_NAMES: readonly LimitName[] = ['enroll', 'device_auth_http', 'device_auth_mqtt'];

/**
 * The per-source-address limits of this replica (see docs/security.md, "Enrollment and device
 * identity"): enrollment requests, and failed device authentications over HTTP and MQTT, which
 * share one bucket per address so an attacker cannot double its guesses by switching transport.
 * Kept in memory per replica; counters are plain numbers exported by the metrics feature.
 */
@Injectable()
export class SourceLimits {
  private readonly enroll: TokenBuckets;
  private readonly authFailures: TokenBuckets;
  private readonly limited = new Map<LimitName, number>(LIMIT_NAMES.map((n) => [n, 0]));

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.enroll = new TokenBuckets(config.rateLimits.enroll);
    this.authFailures = new TokenBuckets(config.rateLimits.deviceAuthFailures);
  }

  /** Takes an enrollment request from `source`: 0 to go on, else milliseconds to wait (counted). */
  takeEnroll(source: string): number {
    return this.count('enroll', this.enroll.take(source));
  }

  /**
   * Before checking a device's credentials: 0 to go on, else milliseconds until `source` may try
   * again (counted under `limit`). A source that used up its failures is refused even with good
   * credentials until the bucket refills, or guessing would stay free.
   */
  checkDeviceAuth(source: string, limit: 'device_auth_http' | 'device_auth_mqtt'): number {
    return this.count(limit, this.authFailures.peek(source));
  }

  /** A failed device authentication from `source` takes one token. */
  deviceAuthFailed(source: string): void {
    this.authFailures.take(source);
  }

  limitedCounts(): ReadonlyMap<LimitName, number> {
    return this.limited;
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
