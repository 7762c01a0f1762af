import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Model telemetry: raw per-device interval samples (partitioned by day), per-minute rollups that
 * every fleet-level query reads, and captured reference distributions for drift.
 *
 * Sized for 1,000,000 devices sending one sample per model per minute: raw rows are only read
 * per device (unique index (device_id, interval_end, seq)) and dropped a whole partition at a time; the rollup
 * has one row per (model, version, cohort, minute), independent of the fleet size.
 */
export class Telemetry1764234000000 implements MigrationInterface {
  name = 'Telemetry1764234000000';

  async up(q: QueryRunner): Promise<void> {
    // Element-wise sums of histogram arrays and label -> count maps, so rollups merge in SQL.
    // Shorter arrays are padded with zeros (unnest of two arrays pads the shorter one with NULL).
    await q.query(`
      CREATE FUNCTION telemetry_array_add(a bigint[], b bigint[]) RETURNS bigint[]
      LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}'::bigint[])
        FROM unnest(coalesce(a, '{}'::bigint[]), coalesce(b, '{}'::bigint[])) WITH ORDINALITY AS t(x, y, i)
      $$`);
    await q.query(`
      CREATE FUNCTION telemetry_jsonb_add(a jsonb, b jsonb) RETURNS jsonb
      LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT coalesce(jsonb_object_agg(k, s), '{}'::jsonb) FROM (
          SELECT k, sum(v) AS s FROM (
            SELECT key AS k, value::numeric AS v FROM jsonb_each_text(coalesce(a, '{}'::jsonb))
            UNION ALL
            SELECT key, value::numeric FROM jsonb_each_text(coalesce(b, '{}'::jsonb))
          ) u GROUP BY k
        ) g
      $$`);
    await q.query(`CREATE AGGREGATE telemetry_array_sum(bigint[]) (SFUNC = telemetry_array_add, STYPE = bigint[], INITCOND = '{}')`);
    await q.query(`CREATE AGGREGATE telemetry_jsonb_sum(jsonb) (SFUNC = telemetry_jsonb_add, STYPE = jsonb, INITCOND = '{}')`);

    // Partition key interval_end must be part of every unique key on a partitioned table; a
    // redelivered message (QoS1 is at-least-once, MQTT 3.1.1 §4.3.2) repeats all three values.
    // Column order (device_id, interval_end, seq) lets the same index serve the per-device view
    // (device_id = $1 AND interval_end in a range), so each row maintains one index, not two.
    await q.query(`
      CREATE TABLE telemetry_samples (
        device_id text COLLATE "C" NOT NULL,
        model text NOT NULL,
        version text NOT NULL,
        seq bigint NOT NULL,
        interval_start timestamptz NOT NULL,
        interval_end timestamptz NOT NULL,
        count integer NOT NULL,
        errors integer NOT NULL,
        latency_buckets integer[] NOT NULL,
        latency_sum_ms double precision NOT NULL,
        predictions jsonb NOT NULL,
        cpu_percent real,
        memory_rss_bytes bigint,
        memory_free_bytes bigint,
        temperature_c real,
        cohort text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT telemetry_samples_device_key UNIQUE (device_id, interval_end, seq)
      ) PARTITION BY RANGE (interval_end)`);

    await q.query(`
      CREATE TABLE telemetry_minute (
        model text NOT NULL,
        version text NOT NULL,
        cohort text NOT NULL,
        minute timestamptz NOT NULL,
        count bigint NOT NULL,
        errors bigint NOT NULL,
        latency_buckets bigint[] NOT NULL,
        latency_sum_ms double precision NOT NULL,
        predictions jsonb NOT NULL,
        -- Samples folded into the row: the number of reporting devices when each sends one sample
        -- per model per minute (the agent's default interval); counted, not deduplicated by device.
        devices integer NOT NULL,
        cpu_percent_sum double precision NOT NULL DEFAULT 0,
        cpu_percent_n integer NOT NULL DEFAULT 0,
        memory_rss_bytes_sum double precision NOT NULL DEFAULT 0,
        memory_rss_bytes_n integer NOT NULL DEFAULT 0,
        memory_free_bytes_sum double precision NOT NULL DEFAULT 0,
        memory_free_bytes_n integer NOT NULL DEFAULT 0,
        temperature_c_sum double precision NOT NULL DEFAULT 0,
        temperature_c_n integer NOT NULL DEFAULT 0,
        PRIMARY KEY (model, version, cohort, minute)
      )`);
    // Gates and the per-cohort view use the primary key; the per-version series (all cohorts),
    // the per-model and per-rollout views read one model over a time range; retention by minute.
    await q.query(`CREATE INDEX telemetry_minute_version_idx ON telemetry_minute (model, version, minute)`);
    await q.query(`CREATE INDEX telemetry_minute_model_idx ON telemetry_minute (model, minute)`);
    await q.query(`CREATE INDEX telemetry_minute_minute_idx ON telemetry_minute (minute)`);

    await q.query(`
      CREATE TABLE telemetry_reference (
        model text NOT NULL,
        version text NOT NULL,
        distribution jsonb NOT NULL,
        source text NOT NULL CHECK (source IN ('uploaded', 'captured')),
        inferences bigint NOT NULL DEFAULT 0,
        window_start timestamptz,
        window_end timestamptz,
        captured_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, version)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE telemetry_reference`);
    await q.query(`DROP TABLE telemetry_minute`);
    await q.query(`DROP TABLE telemetry_samples`);
    await q.query(`DROP AGGREGATE telemetry_jsonb_sum(jsonb)`);
    await q.query(`DROP AGGREGATE telemetry_array_sum(bigint[])`);
    await q.query(`DROP FUNCTION telemetry_jsonb_add(jsonb, jsonb)`);
    await q.query(`DROP FUNCTION telemetry_array_add(bigint[], bigint[])`);
  }
}
