import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Device weight cap of the health gates (telemetry-bounds.ts): each rollup row also keeps the
 * numbers the gates read, with every sample weighted down to at most N times the cohort's median
 * per-sample count, and the histogram (log2 bins) of per-sample counts that median comes from.
 * The viewer API keeps reading the unweighted sums; raw samples keep what each device claimed.
 */
export class TelemetryGateWeights1764234100000 implements MigrationInterface {
  name = 'TelemetryGateWeights1764234100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE telemetry_minute
        ADD COLUMN gate_count bigint NOT NULL DEFAULT 0,
        ADD COLUMN gate_errors bigint NOT NULL DEFAULT 0,
        ADD COLUMN gate_latency_buckets bigint[] NOT NULL DEFAULT '{}',
        ADD COLUMN gate_predictions jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN count_histogram bigint[] NOT NULL DEFAULT '{}'`);
    // Rows written before the cap have no histogram: their gate numbers are the plain sums.
    await q.query(
      `UPDATE telemetry_minute SET gate_count = count, gate_errors = errors, gate_latency_buckets = latency_buckets, gate_predictions = predictions`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE telemetry_minute
        DROP COLUMN gate_count, DROP COLUMN gate_errors, DROP COLUMN gate_latency_buckets, DROP COLUMN gate_predictions, DROP COLUMN count_histogram`);
  }
}
