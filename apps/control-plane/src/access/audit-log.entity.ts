import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One state-changing API call: who, what, on which resource, with which outcome. Append-only. */
@Entity('audit_log')
@Index(['at'])
export class AuditLogEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column('timestamptz', { default: () => 'now()' })
  at: Date;

  /** API key id, or `device:<id>` / `enrollment-token:<id>` for device-initiated changes. */
  @Column('text')
  actor: string;

  @Column('text')
  action: string;

  @Column('text')
  resource: string;

  @Column('int')
  status: number;

  @Column('jsonb', { default: {} })
  details: Record<string, unknown>;
}
