import { Injectable } from '@nestjs/common';
import { LATENCY_BUCKET_COUNT, type TelemetryMessage } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import type { TelemetryLimits } from '../../infra/config/config.schema.js';
import { COUNT_BINS, DEFAULT_TELEMETRY_LIMITS } from './telemetry-bounds.js';
import { FLEET_COHORT, INACTIVE_COHORT } from '../gates/telemetry-cohort.js';
import { partitionDay, partitionName, partitionBounds } from '../maintenance/telemetry-partitions.js';
import { ACTIVE_ROLLOUT_STATES } from '../../rollouts/lifecycle/rollout-transitions.js';

/** A decoded telemetry message and the device it came from (taken from the topic, which the broker ACL binds to the client). */
export interface IngestSample {
  deviceId: string;
  message: TelemetryMessage;
}

export interface BatchWriteResult {
  /** Samples from enrolled, not decommissioned devices. */
  known: number;
  /** New rows (known minus duplicates). */
  inserted: number;
  /** Sum of `dropped` over the inserted samples. */
  agentDropped: number;
  /** Known samples refused by the history checks (not stored, acknowledged). */
  rejected: { seq: number; overlap: number };
  /** One refused sample of the batch, described for the log. */
  rejectedExample?: string;
}

/**
 * Element-wise sum of the fixed-length bucket arrays as one aggregate per element: a hash
 * aggregate over the batch, where unnest-and-regroup would sort LATENCY_BUCKET_COUNT rows per sample.
 * The schema guarantees every sample has exactly LATENCY_BUCKET_COUNT buckets.
 */
const BUCKET_SUMS = `ARRAY[${Array.from({ length: LATENCY_BUCKET_COUNT }, (_, i) => `sum(latency_buckets[${i + 1}])`).join(', ')}]::bigint[]`;
/** The same, each sample weighted by its device weight cap (gate statistics). */
const GATE_BUCKET_SUMS = `ARRAY[${Array.from({ length: LATENCY_BUCKET_COUNT }, (_, i) => `sum(round(latency_buckets[${i + 1}] * w))`).join(', ')}]::bigint[]`;
/** Samples per log2 count bin (telemetry-bounds.ts countBin). */
const COUNT_HISTOGRAM = `ARRAY[${Array.from({ length: COUNT_BINS }, (_, i) => `count(*) FILTER (WHERE bin = ${i})`).join(', ')}]::bigint[]`;

/**
 * Writes telemetry batches set-based: one statement per batch inserts the raw samples (unnest of
 * column arrays; duplicates skipped by the unique key) and folds exactly the inserted rows into
 * the per-minute rollup. Cohort labels come from a join with the device's rollout membership.
 */
@Injectable()
export class TelemetryIngestRepository {
  private readonly knownPartitions = new Set<string>();

  constructor(private readonly dataSource: DataSource) {}

  /** Whether the rollout membership tables exist (rollouts feature installed); without them every sample is `fleet`. */
  async rolloutTablesPresent(): Promise<boolean> {
    const rows: { n: string | number }[] = await this.dataSource.query(
      `SELECT count(*) AS n FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND ((table_name = 'rollouts' AND column_name IN ('id', 'model', 'state', 'created_at'))
            OR (table_name = 'rollout_devices' AND column_name IN ('rollout_id', 'device_id', 'model', 'wave', 'state')))`,
    );
    return Number(rows[0]?.n ?? 0) === 9;
  }

  /** Creates the daily partitions covering `days` (YYYY-MM-DD, UTC) unless already known. */
  async ensurePartitions(days: Iterable<string>): Promise<void> {
    for (const day of days) {
      if (this.knownPartitions.has(day)) continue;
      const { from, to } = partitionBounds(day);
      try {
        await this.dataSource.query(`CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF telemetry_samples FOR VALUES FROM ('${from}') TO ('${to}')`);
      } catch (err) {
        // Another replica created it between our IF NOT EXISTS check and the CREATE.
        const code = (err as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (err as { code?: string }).code;
        if (code !== '42P07' && code !== '23505') throw err;
      }
      this.knownPartitions.add(day);
    }
  }

  forgetPartition(day: string): void {
    this.knownPartitions.delete(day);
  }

  async writeBatch(samples: readonly IngestSample[], withCohorts: boolean, limits: TelemetryLimits = DEFAULT_TELEMETRY_LIMITS): Promise<BatchWriteResult> {
    if (samples.length === 0) return { known: 0, inserted: 0, agentDropped: 0, rejected: { seq: 0, overlap: 0 } };
    await this.ensurePartitions(new Set(samples.map((s) => partitionDay(new Date(s.message.intervalEnd)))));
    const n = samples.length;
    const deviceId = new Array<string>(n);
    const model = new Array<string>(n);
    const version = new Array<string>(n);
    const seq = new Array<number>(n);
    const start = new Array<string>(n);
    const end = new Array<string>(n);
    const count = new Array<number>(n);
    const errors = new Array<number>(n);
    const buckets = new Array<string>(n);
    const latencySum = new Array<number>(n);
    const predictions = new Array<string>(n);
    const cpu = new Array<number | null>(n);
    const rss = new Array<number | null>(n);
    const free = new Array<number | null>(n);
    const temp = new Array<number | null>(n);
    const dropped = new Array<number>(n);
    const variant = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const { deviceId: id, message: m } = samples[i]!;
      deviceId[i] = id;
      model[i] = m.model;
      version[i] = m.version;
      seq[i] = m.seq;
      start[i] = m.intervalStart;
      end[i] = m.intervalEnd;
      count[i] = m.count;
      errors[i] = m.errors;
      // int[] literal per row: unnest of a 2-D array would flatten it.
      buckets[i] = `{${m.latencyBuckets.join(',')}}`;
      latencySum[i] = m.latencySumMs;
      predictions[i] = JSON.stringify(m.predictions);
      cpu[i] = m.vitals.cpuPercent ?? null;
      rss[i] = m.vitals.memoryRssBytes ?? null;
      free[i] = m.vitals.memoryFreeBytes ?? null;
      temp[i] = m.vitals.temperatureC ?? null;
      dropped[i] = m.dropped;
      variant[i] = m.variant ?? '';
    }
    const params: unknown[] = [
      deviceId,
      model,
      version,
      seq,
      start,
      end,
      count,
      errors,
      buckets,
      latencySum,
      predictions,
      cpu,
      rss,
      free,
      temp,
      dropped,
      variant,
      limits.maxSeqGap,
      limits.deviceWeightFactor,
    ];
    let cohortJoin = '';
    let rolloutLabel = 'NULL::text';
    if (withCohorts) {
      // A device's samples carry its rollout's cohort label while that rollout is active.
      params.push([...ACTIVE_ROLLOUT_STATES]);
      // Set-based membership lookup (index rollout_devices (device_id, model) WHERE state <> 'skipped').
      cohortJoin = `LEFT JOIN LATERAL (
          SELECT 'rollout:' || rd.rollout_id::text || ':w' || rd.wave::text AS label
            FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id
           WHERE rd.device_id = x.device_id AND rd.model = x.model AND rd.state <> 'skipped' AND rd.wave IS NOT NULL
             AND r.model = x.model AND r.state = ANY ($20::text[])
           ORDER BY r.created_at DESC
           LIMIT 1) c ON true`;
      rolloutLabel = 'c.label';
    }
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `WITH input AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::int[], $8::int[],
                              $9::text[], $10::float8[], $11::text[], $12::real[], $13::bigint[], $14::bigint[], $15::real[], $16::int[], $17::text[])
           AS x(device_id, model, version, seq, interval_start, interval_end, count, errors, buckets, latency_sum_ms, predictions,
                cpu_percent, memory_rss_bytes, memory_free_bytes, temperature_c, dropped, variant)
       ),
       known AS (
         SELECT x.*,
                -- Outside a rollout's waves a sample is fleet (baseline) evidence only when the device runs the version
                -- it reports (device_models.active_version, from its reports): telemetry claiming a version the device
                -- does not run is kept apart and never counted in a baseline.
                CASE WHEN ${rolloutLabel} IS NOT NULL THEN ${rolloutLabel}
                     WHEN dm.active_version IS NOT DISTINCT FROM x.version THEN '${FLEET_COHORT}'
                     ELSE '${INACTIVE_COHORT}' END AS cohort,
                -- History checks (telemetry-bounds.ts sequenceProblem): against the sample's neighbours among the stored samples of
                -- the same model version, in (interval_end, seq) order: two probes of the index (device_id, interval_end, seq), one
                -- backwards from the sample (the last one not after it, itself when redelivered) and one forwards (the first one
                -- after it). A day either side is enough: no stored interval is longer, so none further away can overlap.
                CASE WHEN last.seq = x.seq AND last.interval_end = x.interval_end THEN NULL
                     WHEN x.seq > last.seq + $18::bigint THEN 'seq'
                     WHEN x.interval_start < last.interval_end THEN 'overlap'
                     WHEN next.interval_start < x.interval_end THEN 'overlap' END AS rejected,
                last.seq AS last_seq, last.interval_end AS last_end, next.seq AS next_seq, next.interval_start AS next_start
           FROM input x
           JOIN devices d ON d.id = x.device_id AND d.decommissioned_at IS NULL
           LEFT JOIN device_models dm ON dm.device_id = x.device_id AND dm.model = x.model
           ${cohortJoin}
           LEFT JOIN LATERAL (
             SELECT s.seq, s.interval_end FROM telemetry_samples s
              WHERE s.device_id = x.device_id AND (s.interval_end, s.seq) <= (x.interval_end, x.seq) AND s.interval_end > x.interval_end - interval '1 day'
                AND s.model = x.model AND s.version = x.version
              ORDER BY s.interval_end DESC, s.seq DESC
              LIMIT 1) last ON true
           LEFT JOIN LATERAL (
             SELECT s.seq, s.interval_start FROM telemetry_samples s
              WHERE s.device_id = x.device_id AND (s.interval_end, s.seq) > (x.interval_end, x.seq) AND s.interval_end < x.interval_end + interval '1 day'
                AND s.model = x.model AND s.version = x.version
              ORDER BY s.interval_end, s.seq
              LIMIT 1) next ON true
       ),
       ins AS (
         INSERT INTO telemetry_samples (device_id, model, version, seq, interval_start, interval_end, count, errors, latency_buckets,
                                        latency_sum_ms, predictions, cpu_percent, memory_rss_bytes, memory_free_bytes, temperature_c, cohort, variant)
         SELECT device_id, model, version, seq, interval_start, interval_end, count, errors, buckets::int[], latency_sum_ms, predictions::jsonb,
                cpu_percent, memory_rss_bytes, memory_free_bytes, temperature_c, cohort, variant
           FROM known
          WHERE rejected IS NULL
         ON CONFLICT DO NOTHING
         RETURNING device_id, seq, interval_end, model, version, variant, cohort, date_trunc('minute', interval_end) AS minute, count, errors,
                   latency_buckets, latency_sum_ms, predictions, cpu_percent, memory_rss_bytes, memory_free_bytes, temperature_c,
                   -- telemetry-bounds.ts countBin: bit length - 1 (0 and 1 share bin 0).
                   greatest(length(ltrim(count::bit(32)::text, '0')) - 1, 0) AS bin
       ),
       -- Device weight cap (telemetry-bounds.ts weightCap): the median of the per-sample counts of each cohort over the
       -- last ten minutes of rollups plus this batch, from log2 histograms, so no device-level scan is needed.
       hist AS (
         SELECT g.model, g.version, g.cohort, h.i, sum(h.n) AS n
           FROM (SELECT DISTINCT model, version, cohort FROM ins) g
           JOIN LATERAL (
             SELECT b.i, b.n FROM telemetry_minute m, unnest(m.count_histogram) WITH ORDINALITY AS b(n, i)
              WHERE m.model = g.model AND m.version = g.version AND m.cohort = g.cohort AND m.minute >= now() - interval '10 minutes'
             UNION ALL
             SELECT ins.bin + 1, 1 FROM ins WHERE ins.model = g.model AND ins.version = g.version AND ins.cohort = g.cohort
           ) h ON true
          GROUP BY 1, 2, 3, 4
       ),
       caps AS (
         SELECT model, version, cohort, $19::float8 * power(2, min(i)) AS cap FROM (
           SELECT hist.*, sum(n) OVER (PARTITION BY model, version, cohort ORDER BY i) AS run,
                  sum(n) OVER (PARTITION BY model, version, cohort) AS total
             FROM hist
         ) r WHERE run * 2 >= total GROUP BY 1, 2, 3
       ),
       weighted AS (
         SELECT ins.*, CASE WHEN caps.cap IS NOT NULL AND ins.count > caps.cap THEN caps.cap / ins.count ELSE 1 END AS w
           FROM ins LEFT JOIN caps USING (model, version, cohort)
       ),
       totals AS (
         SELECT model, version, variant, cohort, minute, sum(count) AS count, sum(errors) AS errors, sum(latency_sum_ms) AS latency_sum_ms,
                count(*) AS devices,
                coalesce(sum(cpu_percent), 0) AS cpu_percent_sum, count(cpu_percent) AS cpu_percent_n,
                coalesce(sum(memory_rss_bytes), 0) AS memory_rss_bytes_sum, count(memory_rss_bytes) AS memory_rss_bytes_n,
                coalesce(sum(memory_free_bytes), 0) AS memory_free_bytes_sum, count(memory_free_bytes) AS memory_free_bytes_n,
                coalesce(sum(temperature_c), 0) AS temperature_c_sum, count(temperature_c) AS temperature_c_n,
                ${BUCKET_SUMS} AS latency_buckets,
                sum(round(count * w)) AS gate_count, sum(round(errors * w)) AS gate_errors, ${GATE_BUCKET_SUMS} AS gate_latency_buckets,
                ${COUNT_HISTOGRAM} AS count_histogram
           FROM weighted GROUP BY model, version, variant, cohort, minute
       ),
       prediction_sums AS (
         SELECT model, version, variant, cohort, minute, jsonb_object_agg(k, s) AS predictions, jsonb_object_agg(k, gs) AS gate_predictions FROM (
           SELECT wt.model, wt.version, wt.variant, wt.cohort, wt.minute, e.key AS k, sum(e.value::bigint) AS s, sum(round(e.value::bigint * wt.w))::bigint AS gs
             FROM weighted wt, jsonb_each_text(wt.predictions) AS e
            GROUP BY 1, 2, 3, 4, 5, 6
         ) p GROUP BY model, version, variant, cohort, minute
       ),
       rollup AS (
         INSERT INTO telemetry_minute AS m (model, version, variant, cohort, minute, count, errors, latency_buckets, latency_sum_ms, predictions, devices,
                                            cpu_percent_sum, cpu_percent_n, memory_rss_bytes_sum, memory_rss_bytes_n,
                                            memory_free_bytes_sum, memory_free_bytes_n, temperature_c_sum, temperature_c_n,
                                            gate_count, gate_errors, gate_latency_buckets, gate_predictions, count_histogram)
         SELECT t.model, t.version, t.variant, t.cohort, t.minute, t.count, t.errors, t.latency_buckets, t.latency_sum_ms,
                coalesce(p.predictions, '{}'::jsonb), t.devices, t.cpu_percent_sum, t.cpu_percent_n, t.memory_rss_bytes_sum, t.memory_rss_bytes_n,
                t.memory_free_bytes_sum, t.memory_free_bytes_n, t.temperature_c_sum, t.temperature_c_n,
                t.gate_count, t.gate_errors, t.gate_latency_buckets, coalesce(p.gate_predictions, '{}'::jsonb), t.count_histogram
           FROM totals t
           LEFT JOIN prediction_sums p USING (model, version, variant, cohort, minute)
          -- A stable order keeps concurrent writers (replicas) from deadlocking on the same rollup rows.
          ORDER BY t.model, t.version, t.variant, t.cohort, t.minute
         ON CONFLICT (model, version, variant, cohort, minute) DO UPDATE SET
           count = m.count + excluded.count,
           errors = m.errors + excluded.errors,
           latency_buckets = telemetry_array_add(m.latency_buckets, excluded.latency_buckets),
           latency_sum_ms = m.latency_sum_ms + excluded.latency_sum_ms,
           predictions = telemetry_jsonb_add(m.predictions, excluded.predictions),
           devices = m.devices + excluded.devices,
           cpu_percent_sum = m.cpu_percent_sum + excluded.cpu_percent_sum,
           cpu_percent_n = m.cpu_percent_n + excluded.cpu_percent_n,
           memory_rss_bytes_sum = m.memory_rss_bytes_sum + excluded.memory_rss_bytes_sum,
           memory_rss_bytes_n = m.memory_rss_bytes_n + excluded.memory_rss_bytes_n,
           memory_free_bytes_sum = m.memory_free_bytes_sum + excluded.memory_free_bytes_sum,
           memory_free_bytes_n = m.memory_free_bytes_n + excluded.memory_free_bytes_n,
           temperature_c_sum = m.temperature_c_sum + excluded.temperature_c_sum,
           temperature_c_n = m.temperature_c_n + excluded.temperature_c_n,
           gate_count = m.gate_count + excluded.gate_count,
           gate_errors = m.gate_errors + excluded.gate_errors,
           gate_latency_buckets = telemetry_array_add(m.gate_latency_buckets, excluded.gate_latency_buckets),
           gate_predictions = telemetry_jsonb_add(m.gate_predictions, excluded.gate_predictions),
           count_histogram = telemetry_array_add(m.count_histogram, excluded.count_histogram)
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM known) AS known,
              (SELECT count(*) FROM ins) AS inserted,
              (SELECT count(*) FROM known WHERE rejected = 'seq') AS rejected_seq,
              (SELECT count(*) FROM known WHERE rejected = 'overlap') AS rejected_overlap,
              -- One refused sample of the batch, named for the log (the counts say how many).
              (SELECT k.device_id || ' seq ' || k.seq || ' of ' || k.model || '@' || k.version || ' from ' || k.interval_start || ' to ' || k.interval_end
                      || ' between stored ' || coalesce('seq ' || k.last_seq || ' ending ' || k.last_end, 'nothing')
                      || ' and ' || coalesce('seq ' || k.next_seq || ' starting ' || k.next_start, 'nothing')
                 FROM known k WHERE k.rejected IS NOT NULL LIMIT 1) AS rejected_example,
              (SELECT coalesce(sum(k.dropped), 0) FROM known k JOIN ins i ON i.device_id = k.device_id AND i.seq = k.seq AND i.interval_end = k.interval_end) AS agent_dropped,
              (SELECT count(*) FROM rollup) AS rollup_rows`,
      params,
    );
    const row = rows[0] ?? {};
    return {
      known: Number(row['known'] ?? 0),
      inserted: Number(row['inserted'] ?? 0),
      agentDropped: Number(row['agent_dropped'] ?? 0),
      rejected: { seq: Number(row['rejected_seq'] ?? 0), overlap: Number(row['rejected_overlap'] ?? 0) },
      ...(typeof row['rejected_example'] === 'string' ? { rejectedExample: row['rejected_example'] } : {}),
    };
  }
}
