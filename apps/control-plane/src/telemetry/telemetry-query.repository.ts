import { Injectable } from '@nestjs/common';
import { LATENCY_BUCKET_COUNT, SHADOW_DIFF_BUCKET_COUNT } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { INACTIVE_COHORT } from './gates/telemetry-cohort.js';
import { aggregateFromRow, distributionFromValue, type TelemetryAggregate } from './gates/telemetry-stats.js';
import type { ShadowTotals } from './gates/shadow-gate.logic.js';

export interface TimeWindow {
  from: Date;
  to: Date;
}

export interface BucketAggregate {
  start: Date;
  aggregate: TelemetryAggregate;
}

export interface ReferenceDistribution {
  distribution: Record<string, number>;
  source: 'uploaded' | 'captured';
}

export interface RolloutRow {
  id: string;
  model: string;
  version: string;
  state: string;
  baselineVersion: string | null;
}

/** Sums of rollup columns; `samples` is the number of device-intervals. */
const ROLLUP_SUMS = `
  sum(count) AS count, sum(errors) AS errors, telemetry_array_sum(latency_buckets) AS latency_buckets,
  sum(latency_sum_ms) AS latency_sum_ms, telemetry_jsonb_sum(predictions) AS predictions, sum(devices) AS samples,
  sum(cpu_percent_sum) AS cpu_percent_sum, sum(cpu_percent_n) AS cpu_percent_n,
  sum(memory_rss_bytes_sum) AS memory_rss_bytes_sum, sum(memory_rss_bytes_n) AS memory_rss_bytes_n,
  sum(memory_free_bytes_sum) AS memory_free_bytes_sum, sum(memory_free_bytes_n) AS memory_free_bytes_n,
  sum(temperature_c_sum) AS temperature_c_sum, sum(temperature_c_n) AS temperature_c_n`;

/**
 * The sums the health gates read: counts, errors, latency and predictions with every sample weighted by its
 * device weight cap (telemetry-bounds.ts), so one device cannot dominate a cohort.
 */
const GATE_SUMS = `
  sum(gate_count) AS count, sum(gate_errors) AS errors, telemetry_array_sum(gate_latency_buckets) AS latency_buckets,
  sum(latency_sum_ms) AS latency_sum_ms, telemetry_jsonb_sum(gate_predictions) AS predictions, sum(devices) AS samples,
  sum(cpu_percent_sum) AS cpu_percent_sum, sum(cpu_percent_n) AS cpu_percent_n,
  sum(memory_rss_bytes_sum) AS memory_rss_bytes_sum, sum(memory_rss_bytes_n) AS memory_rss_bytes_n,
  sum(memory_free_bytes_sum) AS memory_free_bytes_sum, sum(memory_free_bytes_n) AS memory_free_bytes_n,
  sum(temperature_c_sum) AS temperature_c_sum, sum(temperature_c_n) AS temperature_c_n`;

/** The same sums over raw samples (one device). */
const RAW_SUMS = `
  sum(count) AS count, sum(errors) AS errors, telemetry_array_sum(latency_buckets::bigint[]) AS latency_buckets,
  sum(latency_sum_ms) AS latency_sum_ms, telemetry_jsonb_sum(predictions) AS predictions, count(*) AS samples,
  sum(cpu_percent) AS cpu_percent_sum, count(cpu_percent) AS cpu_percent_n,
  sum(memory_rss_bytes) AS memory_rss_bytes_sum, count(memory_rss_bytes) AS memory_rss_bytes_n,
  sum(memory_free_bytes) AS memory_free_bytes_sum, count(memory_free_bytes) AS memory_free_bytes_n,
  sum(temperature_c) AS temperature_c_sum, count(temperature_c) AS temperature_c_n`;

/** Element-wise sums of fixed-length int[] columns as one aggregate per element (no unnest-and-regroup). */
const arraySums = (column: string, length: number): string =>
  `ARRAY[${Array.from({ length }, (_, i) => `coalesce(sum(${column}[${i + 1}]), 0)`).join(', ')}]::bigint[]`;

const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));

/** `AND cohort = $n AND variant = $m` for the filters given, appending their values to `params`. */
function versionFilters(params: unknown[], cohort?: string, variant?: string): string {
  let sql = '';
  if (cohort !== undefined) {
    params.push(cohort);
    sql += ` AND cohort = $${params.length}`;
  }
  if (variant !== undefined) {
    params.push(variant);
    sql += ` AND variant = $${params.length}`;
  }
  return sql;
}

/**
 * Reads for the telemetry API and the health gates. Fleet-level reads go to the per-minute
 * rollup (rows per model/version/variant/cohort/minute, independent of the fleet size); only the
 * per-device view reads raw samples, through (device_id, interval_end).
 */
@Injectable()
export class TelemetryQueryRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** One model version, grouped into buckets of `bucketSeconds` (a multiple of 60). */
  async versionSeries(
    model: string,
    version: string,
    window: TimeWindow,
    bucketSeconds: number,
    cohort?: string,
    variant?: string,
  ): Promise<BucketAggregate[]> {
    const params: unknown[] = [model, version, window.from, window.to, bucketSeconds];
    const filters = versionFilters(params, cohort, variant);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT to_timestamp(floor(extract(epoch FROM minute) / $5) * $5) AS bucket, ${ROLLUP_SUMS}
         FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND minute >= $3 AND minute < $4 ${filters}
        GROUP BY 1 ORDER BY 1`,
      params,
    );
    return rows.map((r) => ({ start: toDate(r['bucket']), aggregate: aggregateFromRow(r) }));
  }

  /** One model version per build (variant; '' for samples that named none) over the window. */
  async perVariant(
    model: string,
    version: string,
    window: TimeWindow,
    cohort?: string,
    variant?: string,
  ): Promise<{ variant: string; aggregate: TelemetryAggregate }[]> {
    const params: unknown[] = [model, version, window.from, window.to];
    const filters = versionFilters(params, cohort, variant);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT variant, ${ROLLUP_SUMS} FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND minute >= $3 AND minute < $4 ${filters}
        GROUP BY variant ORDER BY variant`,
      params,
    );
    return rows.map((r) => ({ variant: String(r['variant']), aggregate: aggregateFromRow(r) }));
  }

  /** Per version of a model over the window. */
  async perVersion(model: string, window: TimeWindow): Promise<{ version: string; aggregate: TelemetryAggregate }[]> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT version, ${ROLLUP_SUMS} FROM telemetry_minute
        WHERE model = $1 AND minute >= $2 AND minute < $3
        GROUP BY version ORDER BY version`,
      [model, window.from, window.to],
    );
    return rows.map((r) => ({ version: String(r['version']), aggregate: aggregateFromRow(r) }));
  }

  /**
   * Per (cohort, version) of a rollout's model: the rollout's own cohorts by name, every other
   * cohort of the model (fleet, other rollouts) folded into `baseline`, except INACTIVE_COHORT
   * (devices reporting a version they do not run), as in the gates.
   */
  async perRolloutCohort(
    model: string,
    cohortPrefix: string,
    window: TimeWindow,
  ): Promise<{ cohort: string; version: string; aggregate: TelemetryAggregate }[]> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT CASE WHEN left(cohort, length($2)) = $2 THEN cohort ELSE 'baseline' END AS cohort_group, version, ${ROLLUP_SUMS}
         FROM telemetry_minute
        WHERE model = $1 AND minute >= $3 AND minute < $4 AND cohort <> $5
        GROUP BY 1, 2 ORDER BY 1, 2`,
      [model, cohortPrefix, window.from, window.to, INACTIVE_COHORT],
    );
    return rows.map((r) => ({ cohort: String(r['cohort_group']), version: String(r['version']), aggregate: aggregateFromRow(r) }));
  }

  /** Candidate cohort of a gate: `version` in the given cohorts (weighted gate sums). */
  async cohortTotals(model: string, version: string, cohorts: readonly string[], window: TimeWindow): Promise<TelemetryAggregate> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT ${GATE_SUMS} FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND cohort = ANY ($3::text[]) AND minute >= $4 AND minute < $5`,
      [model, version, [...cohorts], window.from, window.to],
    );
    return aggregateFromRow(rows[0] ?? {});
  }

  /**
   * Baseline cohort of a gate: `version` outside the given cohorts (weighted gate sums), from
   * devices that run it: samples of devices whose active version is another one are labelled
   * INACTIVE_COHORT at ingest and left out.
   */
  async totalsExcludingCohorts(model: string, version: string, cohorts: readonly string[], window: TimeWindow): Promise<TelemetryAggregate> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT ${GATE_SUMS} FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND cohort <> ALL ($3::text[]) AND minute >= $4 AND minute < $5`,
      [model, version, [...cohorts, INACTIVE_COHORT], window.from, window.to],
    );
    return aggregateFromRow(rows[0] ?? {});
  }

  /** The candidate cohort per build (variant) of the version: what lets gates judge each build on its own. */
  async cohortTotalsByVariant(model: string, version: string, cohorts: readonly string[], window: TimeWindow): Promise<Map<string, TelemetryAggregate>> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT variant, ${GATE_SUMS} FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND cohort = ANY ($3::text[]) AND minute >= $4 AND minute < $5
        GROUP BY variant`,
      [model, version, [...cohorts], window.from, window.to],
    );
    return new Map(rows.map((r) => [String(r['variant']), aggregateFromRow(r)]));
  }

  /** The baseline cohort per build of the baseline version (see totalsExcludingCohorts). */
  async totalsExcludingCohortsByVariant(
    model: string,
    version: string,
    cohorts: readonly string[],
    window: TimeWindow,
  ): Promise<Map<string, TelemetryAggregate>> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT variant, ${GATE_SUMS} FROM telemetry_minute
        WHERE model = $1 AND version = $2 AND cohort <> ALL ($3::text[]) AND minute >= $4 AND minute < $5
        GROUP BY variant`,
      [model, version, [...cohorts, INACTIVE_COHORT], window.from, window.to],
    );
    return new Map(rows.map((r) => [String(r['variant']), aggregateFromRow(r)]));
  }

  /** One device from raw samples, per (model, version, bucket). */
  async deviceSeries(
    deviceId: string,
    window: TimeWindow,
    bucketSeconds: number,
    model?: string,
  ): Promise<{ model: string; version: string; start: Date; aggregate: TelemetryAggregate }[]> {
    const params: unknown[] = [deviceId, window.from, window.to, bucketSeconds];
    if (model !== undefined) params.push(model);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT model, version, to_timestamp(floor(extract(epoch FROM interval_end) / $4) * $4) AS bucket, ${RAW_SUMS}
         FROM telemetry_samples
        WHERE device_id = $1 AND interval_end >= $2 AND interval_end < $3 ${model !== undefined ? 'AND model = $5' : ''}
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      params,
    );
    return rows.map((r) => ({ model: String(r['model']), version: String(r['version']), start: toDate(r['bucket']), aggregate: aggregateFromRow(r) }));
  }

  /**
   * Sums of a rollout's shadow telemetry from the given waves over a window (gates of a shadow
   * wave): the candidate's numbers and the active version's numbers of the same messages. Two
   * aggregate scans of the (rollout_id, wave, interval_end) index; predictions summed per label.
   */
  async shadowTotals(rolloutId: string, waves: readonly number[], window: TimeWindow): Promise<ShadowTotals> {
    const params = [rolloutId, [...waves], window.from, window.to];
    const where = `rollout_id = $1::uuid AND wave = ANY ($2::int[]) AND interval_end >= $3 AND interval_end < $4`;
    const [sums] = (await this.dataSource.query(
      `SELECT count(*) AS samples, count(DISTINCT device_id) AS devices, coalesce(sum(mirrored), 0) AS mirrored, coalesce(sum(dropped), 0) AS dropped,
              coalesce(sum(count), 0) AS count, coalesce(sum(errors), 0) AS errors, coalesce(sum(label_compared), 0) AS label_compared,
              coalesce(sum(agreed), 0) AS agreed, count(diff_buckets) AS with_diffs,
              coalesce(sum(active_count), 0) AS active_count, coalesce(sum(active_errors), 0) AS active_errors,
              ${arraySums('latency_buckets', LATENCY_BUCKET_COUNT)} AS latency_buckets,
              ${arraySums('active_latency_buckets', LATENCY_BUCKET_COUNT)} AS active_latency_buckets,
              ${arraySums('diff_buckets', SHADOW_DIFF_BUCKET_COUNT)} AS diff_buckets
         FROM telemetry_shadow_samples WHERE ${where}`,
      params,
    )) as Record<string, unknown>[];
    const labels = (await this.dataSource.query(
      `SELECT 'c' AS side, e.key, sum(e.value::bigint) AS n FROM telemetry_shadow_samples, jsonb_each_text(predictions) e WHERE ${where} GROUP BY 1, 2
       UNION ALL
       SELECT 'a', e.key, sum(e.value::bigint) FROM telemetry_shadow_samples, jsonb_each_text(active_predictions) e WHERE ${where} GROUP BY 1, 2`,
      params,
    )) as { side: string; key: string; n: string | number }[];
    const predictions: Record<string, number> = {};
    const activePredictions: Record<string, number> = {};
    for (const l of labels) (l.side === 'c' ? predictions : activePredictions)[l.key] = Number(l.n);
    const n = (k: string): number => Number(sums?.[k] ?? 0);
    const arr = (k: string): number[] => ((sums?.[k] as unknown[] | undefined) ?? []).map(Number);
    return {
      samples: n('samples'),
      devices: n('devices'),
      mirrored: n('mirrored'),
      dropped: n('dropped'),
      count: n('count'),
      errors: n('errors'),
      latencyBuckets: arr('latency_buckets'),
      predictions,
      labelCompared: n('label_compared'),
      agreed: n('agreed'),
      diffBuckets: n('with_diffs') > 0 ? arr('diff_buckets') : [],
      active: { count: n('active_count'), errors: n('active_errors'), latencyBuckets: arr('active_latency_buckets'), predictions: activePredictions },
    };
  }

  /** Reference distributions of model versions: an uploaded one (models feature) wins over a captured one. */
  async references(model: string, versions: readonly string[]): Promise<Map<string, ReferenceDistribution>> {
    const out = new Map<string, ReferenceDistribution>();
    if (versions.length === 0) return out;
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT v.version,
              mv.reference_distribution AS uploaded,
              tr.distribution AS captured, tr.source AS captured_source
         FROM unnest($2::text[]) AS v(version)
         LEFT JOIN model_versions mv ON mv.model = $1 AND mv.version = v.version
         LEFT JOIN telemetry_reference tr ON tr.model = $1 AND tr.version = v.version`,
      [model, [...new Set(versions)]],
    );
    for (const r of rows) {
      if (r['uploaded'] !== null && r['uploaded'] !== undefined) {
        out.set(String(r['version']), { distribution: distributionFromValue(r['uploaded']), source: 'uploaded' });
      } else if (r['captured'] !== null && r['captured'] !== undefined) {
        out.set(String(r['version']), {
          distribution: distributionFromValue(r['captured']),
          source: r['captured_source'] === 'uploaded' ? 'uploaded' : 'captured',
        });
      }
    }
    return out;
  }

  async rollout(rolloutId: string): Promise<RolloutRow | undefined> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(`SELECT id, model, version, state, baseline_version FROM rollouts WHERE id = $1`, [
      rolloutId,
    ]);
    const r = rows[0];
    if (!r) return undefined;
    return {
      id: String(r['id']),
      model: String(r['model']),
      version: String(r['version']),
      state: String(r['state']),
      baselineVersion: r['baseline_version'] === null || r['baseline_version'] === undefined ? null : String(r['baseline_version']),
    };
  }
}
