import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Shadow telemetry: one row per device interval of a shadow wave (the `shadow` block of a telemetry
 * message), beside the active version's own numbers of the same message, which are the baseline
 * of the shadow gates' relative bounds. Only members of the rollout's waves are stored; the key
 * is the telemetry sample's, so a redelivered message adds nothing.
 */
export class TelemetryShadow1764241200001 implements MigrationInterface {
  name = 'TelemetryShadow1764241200001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE telemetry_shadow_samples (
        device_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        interval_end timestamptz NOT NULL,
        model text NOT NULL,
        rollout_id uuid NOT NULL,
        wave integer NOT NULL,
        active_version text NOT NULL,
        candidate_version text NOT NULL,
        mirrored integer NOT NULL,
        dropped integer NOT NULL,
        count integer NOT NULL,
        errors integer NOT NULL,
        latency_buckets integer[] NOT NULL,
        latency_sum_ms double precision NOT NULL,
        predictions jsonb NOT NULL,
        label_compared integer NOT NULL,
        agreed integer NOT NULL,
        diff_buckets integer[],
        active_count integer NOT NULL,
        active_errors integer NOT NULL,
        active_latency_buckets integer[] NOT NULL,
        active_predictions jsonb NOT NULL,
        ended boolean NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, interval_end, seq)
      )`);
    // Gates read one rollout's waves over a time window.
    await q.query(`CREATE INDEX telemetry_shadow_samples_rollout ON telemetry_shadow_samples (rollout_id, wave, interval_end)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE telemetry_shadow_samples`);
  }
}
