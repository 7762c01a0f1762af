import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * Reference prediction distribution of a model version for drift (PSI). Rows are captured from
 * a version's first production window; a distribution uploaded with the version
 * (model_versions.reference_distribution) takes precedence when reading.
 */
@Entity('telemetry_reference')
export class TelemetryReferenceEntity {
  @PrimaryColumn('text')
  model!: string;

  @PrimaryColumn('text')
  version!: string;

  @Column('jsonb')
  distribution!: Record<string, number>;

  @Column('text')
  source!: 'uploaded' | 'captured';

  @Column('bigint')
  inferences!: string;

  @Column('timestamptz', { nullable: true })
  windowStart!: Date | null;

  @Column('timestamptz', { nullable: true })
  windowEnd!: Date | null;

  @Column('timestamptz')
  capturedAt!: Date;
}
