import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, type Repository } from 'typeorm';
import { AuditLogEntity } from './audit-log.entity.js';

export interface AuditRecord {
  actor: string;
  action: string;
  resource: string;
  status: number;
  details?: Record<string, unknown>;
}

/** Records written per statement, and how long one waits for others to join it. */
const BATCH = 500;
const LINGER_MS = 20;

interface Pending {
  record: AuditRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The audit log. Writes are group-committed: every call within LINGER_MS goes into one
 * `INSERT … SELECT FROM unnest`, so a burst of audited calls (10,000 devices enrolling) costs a few
 * statements instead of one per request, and on PGlite does not queue ahead of MQTT authentication.
 * Reads flush first, so a replica always reads its own writes.
 */
@Injectable()
export class AuditLogRepository implements OnModuleDestroy {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(@InjectRepository(AuditLogEntity) private readonly repo: Repository<AuditLogEntity>) {}

  append(record: AuditRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (this.pending.length >= BATCH) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), LINGER_MS);
    });
  }

  /** Writes everything appended so far; resolves when it is stored (or failed, which append reports). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.writing = this.writing.then(() => (batch.length > 0 ? this.write(batch) : undefined));
    return this.writing;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }

  private async write(batch: Pending[]): Promise<void> {
    const r = batch.map((p) => p.record);
    try {
      await this.repo.query(
        `INSERT INTO audit_log (actor, action, resource, status, details)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[])`,
        [r.map((x) => x.actor), r.map((x) => x.action), r.map((x) => x.resource), r.map((x) => x.status), r.map((x) => JSON.stringify(x.details ?? {}))],
      );
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  /** Newest first, keyset on id. */
  async page(limit: number, beforeId?: string): Promise<AuditLogEntity[]> {
    await this.flush();
    return this.repo.find({ where: beforeId ? { id: LessThan(beforeId) } : {}, order: { id: 'DESC' }, take: limit });
  }
}
