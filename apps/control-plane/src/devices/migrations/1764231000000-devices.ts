import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Devices, their per-model desired/reported state, and enrollment tokens. Sized for 1,000,000
 * devices: every list filter and the fleet summary are served by an index (see the comments).
 *
 * Device ids use the "C" collation: ids are ASCII, byte order makes keyset pagination and
 * `id LIKE 'prefix%'` use the primary key btree directly (a locale collation cannot serve LIKE).
 */
export class Devices1764231000000 implements MigrationInterface {
  name = 'Devices1764231000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE enrollment_tokens (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        token_hash text NOT NULL UNIQUE,
        tags jsonb NOT NULL DEFAULT '{}',
        expires_at timestamptz,
        max_uses int CHECK (max_uses IS NULL OR max_uses > 0),
        uses int NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE devices (
        id text COLLATE "C" PRIMARY KEY,
        name text,
        tags jsonb NOT NULL DEFAULT '{}',
        inventory jsonb,
        hardware_class text,
        agent_version text,
        credential_hash text,
        online boolean NOT NULL DEFAULT false,
        last_seen_at timestamptz,
        presence_changed_at timestamptz,
        enrolled_at timestamptz NOT NULL DEFAULT now(),
        enrollment_token_id uuid REFERENCES enrollment_tokens (id) ON DELETE SET NULL,
        decommissioned_at timestamptz,
        last_report_seq bigint NOT NULL DEFAULT -1,
        inventory_seq bigint NOT NULL DEFAULT -1
      )`);
    // `tags @> '{"region":"eu"}'` (jsonb_path_ops: smaller and faster for containment only).
    await q.query(`CREATE INDEX devices_tags_idx ON devices USING gin (tags jsonb_path_ops)`);
    // ?online=true|false in id order, and the fleet summary's online count (index-only scan).
    await q.query(`CREATE INDEX devices_presence_idx ON devices (online, id) WHERE decommissioned_at IS NULL`);
    // ?decommissioned=true lists a (small) set without scanning the live fleet.
    await q.query(`CREATE INDEX devices_decommissioned_idx ON devices (id) WHERE decommissioned_at IS NOT NULL`);
    await q.query(`
      CREATE TABLE device_models (
        device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        model text NOT NULL,
        desired_version text,
        desired_revision bigint NOT NULL DEFAULT 0,
        desired_rollout_id uuid,
        desired_action text,
        desired_at timestamptz,
        report_version text,
        report_state text,
        report_revision bigint,
        report_at timestamptz,
        active_version text,
        previous_version text,
        failure_code text,
        failure_message text,
        PRIMARY KEY (device_id, model)
      )`);
    // ?model=&version= in device id order and the fleet summary's GROUP BY model, active_version.
    await q.query(`CREATE INDEX device_models_model_active_idx ON device_models (model, active_version, device_id)`);
    await q.query(`CREATE INDEX device_models_rollout_idx ON device_models (desired_rollout_id) WHERE desired_rollout_id IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE device_models`);
    await q.query(`DROP TABLE devices`);
    await q.query(`DROP TABLE enrollment_tokens`);
  }
}
