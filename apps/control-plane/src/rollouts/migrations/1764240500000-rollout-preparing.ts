import type { MigrationInterface, QueryRunner } from 'typeorm';

const STATES_BEFORE = `'scheduled', 'running', 'paused', 'rolling-back', 'completed', 'cancelled', 'aborted', 'rolled-back'`;

/**
 * The `preparing` state: a rollout created with a large explicit id list is stored at once with
 * its raw list (one array row in rollout_target_ids) and the engine materialises its membership
 * afterwards (preparation/rollout-preparer.ts). The row is deleted when preparation ends.
 */
export class RolloutPreparing1764240500000 implements MigrationInterface {
  name = 'RolloutPreparing1764240500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rollouts DROP CONSTRAINT rollouts_state_check`);
    await q.query(`ALTER TABLE rollouts ADD CONSTRAINT rollouts_state_check CHECK (state IN ('preparing', ${STATES_BEFORE}))`);
    // The preparer's queue, oldest first.
    await q.query(`CREATE INDEX rollouts_preparing_idx ON rollouts (created_at, id) WHERE state = 'preparing'`);
    await q.query(`
      CREATE TABLE rollout_target_ids (
        rollout_id uuid PRIMARY KEY REFERENCES rollouts (id) ON DELETE CASCADE,
        device_ids text[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rollout_target_ids`);
    await q.query(`DROP INDEX rollouts_preparing_idx`);
    await q.query(`UPDATE rollouts SET state = 'cancelled', finished_at = coalesce(finished_at, now()) WHERE state = 'preparing'`);
    await q.query(`ALTER TABLE rollouts DROP CONSTRAINT rollouts_state_check`);
    await q.query(`ALTER TABLE rollouts ADD CONSTRAINT rollouts_state_check CHECK (state IN (${STATES_BEFORE}))`);
  }
}
