import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { VersionMetadata } from './version-metadata.js';

@Entity('model_versions')
export class ModelVersionEntity {
  @PrimaryColumn('text')
  model: string;

  @PrimaryColumn('text')
  version: string;

  /** Precedence columns (see semver-sort-key.ts). */
  @Column('integer')
  major: number;

  @Column('integer')
  minor: number;

  @Column('integer')
  patch: number;

  @Column('text', { nullable: true })
  prerelease: string | null;

  @Column('text')
  prereleaseSort: string;

  @Column('jsonb')
  metadata: VersionMetadata;

  /** Label -> count of the validation set's predictions; baseline for drift (PSI). */
  @Column('jsonb', { nullable: true })
  referenceDistribution: Record<string, number> | null;

  /** `awaiting-signature`: uploaded with TUF_KEYS=offline, not yet listed in signed targets. */
  @Column('text', { default: 'published' })
  status: string;

  @Column('timestamptz')
  createdAt: Date;
}
