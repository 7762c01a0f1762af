import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rollouts, their waves, their per-device membership and their decision log. Everything the
 * engine needs to resume after a crash lives here: current_wave only moves forward with a
 * compare-and-set, and a device is marked `notified` (in the same transaction that checks the
 * wave) before anything is published.
 */
export class Rollouts1764233000000 implements MigrationInterface {
  name = 'Rollouts1764233000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE rollouts (
        id uuid PRIMARY KEY,
        model text NOT NULL,
        version text NOT NULL,
        state text NOT NULL CHECK (state IN ('scheduled', 'running', 'paused', 'rolling-back', 'completed', 'cancelled', 'aborted', 'rolled-back')),
        state_reason text,
        action text NOT NULL CHECK (action IN ('install', 'download-only')),
        priority int NOT NULL DEFAULT 0,
        spec jsonb NOT NULL,
        baseline_version text,
        target_count int NOT NULL DEFAULT 0,
        skipped_count int NOT NULL DEFAULT 0,
        current_wave int NOT NULL DEFAULT -1,
        start_at timestamptz NOT NULL,
        end_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz,
        install_requested_at timestamptz,
        created_by text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Engine: the active rollouts; API: ?state=&model= in keyset order.
    await q.query(`CREATE INDEX rollouts_active_idx ON rollouts (state) WHERE state IN ('scheduled', 'running', 'paused', 'rolling-back')`);
    await q.query(`CREATE INDEX rollouts_list_idx ON rollouts (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX rollouts_model_idx ON rollouts (model, created_at DESC, id DESC)`);
    await q.query(`
      CREATE TABLE rollout_waves (
        rollout_id uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        idx int NOT NULL,
        size int NOT NULL,
        spec jsonb NOT NULL,
        started_at timestamptz,
        success_since timestamptz,
        finished_at timestamptz,
        accepted_failures int NOT NULL DEFAULT 0,
        gates_overridden boolean NOT NULL DEFAULT false,
        gate_results jsonb,
        gates_evaluated_at timestamptz,
        PRIMARY KEY (rollout_id, idx)
      )`);
    await q.query(`
      CREATE TABLE rollout_devices (
        rollout_id uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        device_id text COLLATE "C" NOT NULL,
        model text NOT NULL,
        ordinal int NOT NULL,
        wave int,
        state text NOT NULL,
        reason text,
        failure_code text,
        from_version text,
        revision bigint,
        attempts int NOT NULL DEFAULT 0,
        not_before timestamptz,
        notified_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (rollout_id, device_id)
      )`);
    // Next batch to notify (state = 'pending' AND wave <= k ORDER BY wave, ordinal LIMIT n reads only the batch), and the
    // in-flight states the engine synchronises and times out every tick.
    await q.query(`CREATE INDEX rollout_devices_state_idx ON rollout_devices (rollout_id, state, wave, ordinal)`);
    // Per-wave counts by state (index-only).
    await q.query(`CREATE INDEX rollout_devices_wave_idx ON rollout_devices (rollout_id, wave, state)`);
    await q.query(`CREATE UNIQUE INDEX rollout_devices_ordinal_idx ON rollout_devices (rollout_id, ordinal)`);
    // Conflict check: which rollouts hold a device for a model.
    await q.query(`CREATE INDEX rollout_devices_device_idx ON rollout_devices (device_id, model) WHERE state <> 'skipped'`);
    await q.query(`
      CREATE TABLE rollout_events (
        id bigserial PRIMARY KEY,
        rollout_id uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        type text NOT NULL,
        wave int,
        message text NOT NULL,
        data jsonb NOT NULL DEFAULT '{}'
      )`);
    await q.query(`CREATE INDEX rollout_events_rollout_idx ON rollout_events (rollout_id, id DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rollout_events`);
    await q.query(`DROP TABLE rollout_devices`);
    await q.query(`DROP TABLE rollout_waves`);
    await q.query(`DROP TABLE rollouts`);
  }
}
