import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { dayOfPartition } from './telemetry-partitions.js';

export interface ReferenceCaptureOptions {
  /** Capture once this many inferences were seen since the version's first minute... */
  minInferences: number;
  /** ...or once this much time has passed since it. */
  windowSeconds: number;
  /** Only versions with data this recent are considered (keeps the job off old rollups). */
  lookbackSeconds: number;
}

@Injectable()
export class TelemetryMaintenanceRepository {
  constructor(private readonly dataSource: DataSource) {}

  async listPartitions(): Promise<string[]> {
    const rows: { name: string }[] = await this.dataSource.query(
      `SELECT c.relname AS name FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'telemetry_samples' AND p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`,
    );
    return rows.map((r) => r.name).filter((n) => dayOfPartition(n) !== undefined);
  }

  async dropPartition(name: string): Promise<void> {
    if (dayOfPartition(name) === undefined) throw new Error(`refusing to drop ${name}: not a telemetry partition`);
    await this.dataSource.query(`DROP TABLE IF EXISTS ${name}`);
  }

  async deleteRollupsBefore(before: Date): Promise<number> {
    const rows: { n: string | number }[] = await this.dataSource.query(
      `WITH d AS (DELETE FROM telemetry_minute WHERE minute < $1 RETURNING 1) SELECT count(*) AS n FROM d`,
      [before],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Captures the reference distribution of every recently active model version that has none
   * (neither uploaded with the version nor captured before): the predictions of its first window
   * of production data, i.e. whole minutes from its first minute until `minInferences` were
   * reached, or the first `windowSeconds` when traffic is lower. Set-based, one statement.
   */
  async captureReferences(options: ReferenceCaptureOptions): Promise<number> {
    const rows: { n: string | number }[] = await this.dataSource.query(
      `WITH recent AS (
         SELECT DISTINCT model, version FROM telemetry_minute WHERE minute >= now() - make_interval(secs => $3)
       ),
       pending AS (
         SELECT r.model, r.version FROM recent r
          WHERE NOT EXISTS (SELECT 1 FROM telemetry_reference t WHERE t.model = r.model AND t.version = r.version)
            AND NOT EXISTS (SELECT 1 FROM model_versions mv WHERE mv.model = r.model AND mv.version = r.version AND mv.reference_distribution IS NOT NULL)
       ),
       firsts AS (
         SELECT p.model, p.version, (SELECT min(m.minute) FROM telemetry_minute m WHERE m.model = p.model AND m.version = p.version) AS first_minute
           FROM pending p
       ),
       per_minute AS (
         SELECT f.model, f.version, f.first_minute, m.minute, sum(m.count) AS count, telemetry_jsonb_sum(m.predictions) AS predictions
           FROM firsts f
           JOIN telemetry_minute m ON m.model = f.model AND m.version = f.version
            AND m.minute >= f.first_minute AND m.minute < f.first_minute + make_interval(secs => $2)
          GROUP BY 1, 2, 3, 4
       ),
       running AS (
         SELECT *, sum(count) OVER (PARTITION BY model, version ORDER BY minute) AS running FROM per_minute
       ),
       chosen AS (
         SELECT model, version, max(first_minute) AS first_minute, telemetry_jsonb_sum(predictions) AS distribution, sum(count) AS inferences,
                min(minute) AS window_start, max(minute) + interval '1 minute' AS window_end, max(running) AS reached
           FROM running WHERE running - count < $1
          GROUP BY model, version
       ),
       ins AS (
         INSERT INTO telemetry_reference (model, version, distribution, source, inferences, window_start, window_end)
         SELECT model, version, distribution, 'captured', inferences, window_start, window_end FROM chosen
          WHERE distribution <> '{}'::jsonb
            -- The last minute of the window must be complete before it is frozen.
            AND (reached >= $1 OR now() >= first_minute + make_interval(secs => $2) + interval '1 minute')
         ON CONFLICT (model, version) DO NOTHING
         RETURNING 1
       )
       SELECT count(*) AS n FROM ins`,
      [options.minInferences, options.windowSeconds, options.lookbackSeconds],
    );
    return Number(rows[0]?.n ?? 0);
  }
}
