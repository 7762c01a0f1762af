import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { Tags } from '@fleetline/protocol';

/** A shared secret devices present to enroll themselves; only its hash is stored. */
@Entity('enrollment_tokens')
export class EnrollmentTokenEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text')
  name: string;

  @Column('text', { unique: true })
  tokenHash: string;

  /** Applied to every device enrolled with this token; they win over tags the device asks for (operator-controlled). */
  @Column('jsonb', { default: {} })
  tags: Tags;

  @Column('timestamptz', { nullable: true })
  expiresAt: Date | null;

  @Column('int', { nullable: true })
  maxUses: number | null;

  @Column('int', { default: 0 })
  uses: number;

  @Column('timestamptz', { default: () => 'now()' })
  createdAt: Date;

  @Column('timestamptz', { nullable: true })
  revokedAt: Date | null;
}
