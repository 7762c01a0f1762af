import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { TokenBuckets } from '../infra/rate-limit/token-bucket.js';
import { AuditLogRepository } from './audit-log.repository.js';

export interface Refusal {
  /** `api-key:<id>` when the key was valid but lacked the role, else `anonymous`. */
  actor: string;
  method: string;
  route: string;
  resource: string;
  status: number;
  reason: string;
  source: string;
}

/** How many times the per-source cap the whole replica writes, so a spray of addresses is bounded too. */
const GLOBAL_FACTOR = 10;

/**
 * Writes refused API calls (401/403) to the audit log. An attacker decides how many of those
 * there are, so each source address gets a token bucket (AUDIT_REFUSALS_*), and the replica as a
 * whole ten times that; what is over either is not written but counted
 * (fleetline_audit_refusals_dropped_total), and logged once a minute at most. Writes go through
 * the audit log's group commit, so a burst within the cap costs a few statements.
 */
@Injectable()
export class RefusalAudit {
  private readonly logger = new Logger('Audit');
  private readonly perSource: TokenBuckets;
  private readonly global: TokenBuckets;
  private droppedCount = 0;
  private lastDropLog = 0;

  constructor(
    private readonly audit: AuditLogRepository,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const policy = config.rateLimits.auditRefusals;
    this.perSource = new TokenBuckets(policy);
    this.global = new TokenBuckets({ burst: policy.burst * GLOBAL_FACTOR, perSecond: policy.perSecond * GLOBAL_FACTOR });
  }

  get dropped(): number {
    return this.droppedCount;
  }

  record(refusal: Refusal): void {
    if (this.perSource.take(refusal.source) > 0 || this.global.take('*') > 0) {
      this.droppedCount++;
      const now = Date.now();
      if (now - this.lastDropLog > 60_000) {
        this.lastDropLog = now;
        this.logger.warn(`refused calls over the audit cap are counted, not written (${this.droppedCount} so far; latest from ${refusal.source})`);
      }
      return;
    }
    this.audit
      .append({
        actor: refusal.actor,
        action: `${refusal.method} ${refusal.route}`,
        resource: refusal.resource,
        status: refusal.status,
        details: { refused: true, reason: refusal.reason, source: refusal.source },
      })
      .catch((err: unknown) => this.logger.error(`audit write failed: ${String(err)}`));
  }
}
