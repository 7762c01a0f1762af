import { Injectable } from '@nestjs/common';
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

@Injectable()
export class AuditLogRepository {
  constructor(@InjectRepository(AuditLogEntity) private readonly repo: Repository<AuditLogEntity>) {}

  async append(record: AuditRecord): Promise<void> {
    await this.repo.query('INSERT INTO audit_log (actor, action, resource, status, details) VALUES ($1, $2, $3, $4, $5::jsonb)', [
      record.actor,
      record.action,
      record.resource,
      record.status,
      JSON.stringify(record.details ?? {}),
    ]);
  }

  /** Newest first, keyset on id. */
  page(limit: number, beforeId?: string): Promise<AuditLogEntity[]> {
    return this.repo.find({ where: beforeId ? { id: LessThan(beforeId) } : {}, order: { id: 'DESC' }, take: limit });
  }
}
