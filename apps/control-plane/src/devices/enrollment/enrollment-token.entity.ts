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

  /** Applied to every device enrolled with this token; they win over the tags the device sets itself (only keys of deviceTagKeys). */
  @Column('jsonb', { default: {} })
  tags: Tags;

  /** Tag keys an enrolling device may set itself; any other tag it asks for refuses the enrollment. */
  @Column('text', { array: true, default: () => "'{}'" })
  deviceTagKeys: string[];

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
