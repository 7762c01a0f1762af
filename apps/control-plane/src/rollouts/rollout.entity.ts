import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import type { RolloutAction, RolloutSpec, RolloutState } from './rollout.types.js';

/**
 * A rollout row. The engine and the repository work on it with set-based SQL
 * (rollout.repository.ts); the entity documents the columns and serves simple reads.
 */
@Entity('rollouts')
export class RolloutEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text')
  model: string;

  @Column('text')
  version: string;

  @Column('text')
  state: RolloutState;

  @Column('text', { nullable: true })
  stateReason: string | null;

  @Column('text')
  action: RolloutAction;

  @Column('int')
  priority: number;

  @Column('jsonb')
  spec: RolloutSpec;

  @Column('text', { nullable: true })
  baselineVersion: string | null;

  @Column('int')
  targetCount: number;

  @Column('int')
  skippedCount: number;

  /** Index of the latest started wave; -1 before the first. Only ever moves forward (compare-and-set). */
  @Column('int')
  currentWave: number;

  @Column('timestamptz')
  startAt: Date;

  @Column('timestamptz', { nullable: true })
  endAt: Date | null;

  @Column('timestamptz', { nullable: true })
  startedAt: Date | null;

  @Column('timestamptz', { nullable: true })
  finishedAt: Date | null;

  @Column('timestamptz', { nullable: true })
  installRequestedAt: Date | null;

  @Column('text', { nullable: true })
  createdBy: string | null;

  @Column('timestamptz')
  createdAt: Date;

  @Column('timestamptz')
  updatedAt: Date;
}

/** One engine decision or operator action, with the numbers behind it. */
@Entity('rollout_events')
export class RolloutEventEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column('uuid')
  rolloutId: string;

  @Column('timestamptz')
  at: Date;

  @Column('text')
  type: string;

  @Column('int', { nullable: true })
  wave: number | null;

  @Column('text')
  message: string;

  @Column('jsonb')
  data: Record<string, unknown>;
}
