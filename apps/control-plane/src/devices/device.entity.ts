import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { Inventory, Tags } from '@fleetline/protocol';

/** A device of the fleet. Hot paths use hand-written SQL (devices.repository.ts); this mapping documents the table. */
@Entity('devices')
export class DeviceEntity {
  @PrimaryColumn('text')
  id: string;

  @Column('text', { nullable: true })
  name: string | null;

  @Column('jsonb', { default: {} })
  tags: Tags;

  @Column('jsonb', { nullable: true })
  inventory: Inventory | null;

  @Column('text', { nullable: true })
  hardwareClass: string | null;

  @Column('text', { nullable: true })
  agentVersion: string | null;

  /** sha256 of the device secret; null once decommissioned. */
  @Column('text', { nullable: true })
  credentialHash: string | null;

  @Column('boolean', { default: false })
  online: boolean;

  @Column('timestamptz', { nullable: true })
  lastSeenAt: Date | null;

  @Column('timestamptz', { nullable: true })
  presenceChangedAt: Date | null;

  /** Connection the presence belongs to: an offline event of another session does not apply. */
  @Column('text', { nullable: true })
  presenceSession: string | null;

  /** Control-plane replica holding the connection (clustered embedded brokers), for its crash sweep. */
  @Column('text', { nullable: true })
  presenceReplica: string | null;

  @Column('timestamptz', { default: () => 'now()' })
  enrolledAt: Date;

  @Column('uuid', { nullable: true })
  enrollmentTokenId: string | null;

  @Column('timestamptz', { nullable: true })
  decommissionedAt: Date | null;

  @Column('bigint', { default: -1 })
  lastReportSeq: string;

  @Column('bigint', { default: -1 })
  inventorySeq: string;
}
