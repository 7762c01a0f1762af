import type { Compatibility } from '@fleetline/protocol';
import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity('artifacts')
export class ArtifactEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text')
  model: string;

  @Column('text')
  version: string;

  @Column('text')
  fileName: string;

  @Column('smallint')
  position: number;

  @Column('text')
  sha256: string;

  /** bigint: TypeORM/pg return it as a string, so the repository converts it. */
  @Column('bigint')
  size: string;

  @Column('text')
  runtime: string;

  @Column('text', { nullable: true })
  framework: string | null;

  @Column('jsonb')
  compatibility: Compatibility;

  /** The build this file belongs to; null is the `default` build. */
  @Column('text', { nullable: true })
  variant: string | null;

  /** Preference of the build in the version's declared order (0 first). */
  @Column('smallint', { default: 0 })
  variantRank: number;

  @Column('text')
  storageKey: string;

  /** TUF target path `{model}/{version}/{fileName}`. */
  @Column('text', { unique: true })
  targetPath: string;

  @Column('timestamptz')
  createdAt: Date;
}
