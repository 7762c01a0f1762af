import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Desired and reported state of one model on one device. Written set-based (desired-state.service.ts, report-ingest.service.ts). */
@Entity('device_models')
export class DeviceModelEntity {
  @PrimaryColumn('text')
  deviceId: string;

  @PrimaryColumn('text')
  model: string;

  @Column('text', { nullable: true })
  desiredVersion: string | null;

  @Column('bigint', { default: 0 })
  desiredRevision: string;

  @Column('uuid', { nullable: true })
  desiredRolloutId: string | null;

  @Column('text', { nullable: true })
  desiredAction: string | null;

  @Column('timestamptz', { nullable: true })
  desiredAt: Date | null;

  /** Per-update deadline sent with the desired state, kept so a re-sent state says the same. */
  @Column('int', { nullable: true })
  desiredTimeoutSeconds: number | null;

  /** The build of desired_version chosen for this device from its inventory (null: the device chooses). */
  @Column('text', { nullable: true })
  desiredVariant: string | null;

  /** The shadow directive of an assignment with action shadow (protocol ShadowDirective). */
  @Column('jsonb', { nullable: true })
  desiredShadow: unknown;

  @Column('text', { nullable: true })
  reportVersion: string | null;

  /** The build of report_version the device reported downloading/installing. */
  @Column('text', { nullable: true })
  variant: string | null;

  @Column('text', { nullable: true })
  reportState: string | null;

  @Column('bigint', { nullable: true })
  reportRevision: string | null;

  @Column('timestamptz', { nullable: true })
  reportAt: Date | null;

  @Column('text', { nullable: true })
  activeVersion: string | null;

  @Column('text', { nullable: true })
  previousVersion: string | null;

  @Column('text', { nullable: true })
  failureCode: string | null;

  @Column('text', { nullable: true })
  failureMessage: string | null;
}
