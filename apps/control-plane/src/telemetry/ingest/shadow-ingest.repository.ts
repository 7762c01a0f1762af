import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { IngestSample } from './telemetry-ingest.repository.js';

/**
 * Writes the shadow blocks of a telemetry batch set-based: one INSERT … SELECT FROM unnest for the
 * batch. A row is stored only when its telemetry sample was (same key in telemetry_samples: refused
 * and unknown samples bring no shadow in) and when the device is a member of a wave of the rollout
 * it names, for that rollout's version; anything else a device claims is left out.
 */
@Injectable()
export class ShadowIngestRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** Returns how many shadow rows were stored. */
  async writeShadow(samples: readonly IngestSample[]): Promise<number> {
    const withShadow = samples.filter((s) => s.message.shadow?.rolloutId !== undefined);
    if (withShadow.length === 0) return 0;
    const col = <T>(f: (s: IngestSample) => T): T[] => withShadow.map(f);
    const intArray = (a: readonly number[] | undefined): string | null => (a ? `{${a.join(',')}}` : null);
    const rows: { n: string | number }[] = await this.dataSource.query(
      `WITH x AS (
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::int[], $9::int[], $10::int[], $11::int[], $12::text[], $13::float8[], $14::text[], $15::int[], $16::int[], $17::text[],
                              $18::int[], $19::int[], $20::text[], $21::text[], $22::boolean[])
           AS x(device_id, seq, interval_end, model, rollout_id, active_version, candidate_version,
                mirrored, dropped, count, errors, latency_buckets, latency_sum_ms, predictions, label_compared, agreed, diff_buckets,
                active_count, active_errors, active_latency_buckets, active_predictions, ended)
       ),
       ins AS (
         INSERT INTO telemetry_shadow_samples (device_id, seq, interval_end, model, rollout_id, wave, active_version, candidate_version,
                                               mirrored, dropped, count, errors, latency_buckets, latency_sum_ms, predictions, label_compared, agreed,
                                               diff_buckets, active_count, active_errors, active_latency_buckets, active_predictions, ended)
         SELECT x.device_id, x.seq, x.interval_end, x.model, rd.rollout_id, rd.wave, x.active_version, x.candidate_version,
                x.mirrored, x.dropped, x.count, x.errors, x.latency_buckets::int[], x.latency_sum_ms, x.predictions::jsonb, x.label_compared, x.agreed,
                x.diff_buckets::int[], x.active_count, x.active_errors, x.active_latency_buckets::int[], x.active_predictions::jsonb, x.ended
           FROM x
           -- A rollout id a device made up must not fail the batch on a uuid cast, so only well-formed ids are cast;
           -- the cast is on the claimed side, which keeps rollout_devices' primary key usable.
           JOIN rollout_devices rd ON rd.rollout_id = (CASE WHEN x.rollout_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN x.rollout_id::uuid END)
                                  AND rd.device_id = x.device_id AND rd.model = x.model AND rd.wave IS NOT NULL
           JOIN rollouts r ON r.id = rd.rollout_id AND r.version = x.candidate_version
          WHERE EXISTS (SELECT 1 FROM telemetry_samples s
                         WHERE s.device_id = x.device_id AND s.interval_end = x.interval_end AND s.seq = x.seq AND s.model = x.model
                           AND s.version = x.active_version)
         ON CONFLICT DO NOTHING
         RETURNING 1
       )
       SELECT count(*) AS n FROM ins`,
      [
        col((s) => s.deviceId),
        col((s) => s.message.seq),
        col((s) => s.message.intervalEnd),
        col((s) => s.message.model),
        col((s) => s.message.shadow!.rolloutId!),
        col((s) => s.message.version),
        col((s) => s.message.shadow!.version),
        col((s) => s.message.shadow!.mirrored),
        col((s) => s.message.shadow!.dropped),
        col((s) => s.message.shadow!.count),
        col((s) => s.message.shadow!.errors),
        col((s) => intArray(s.message.shadow!.latencyBuckets)),
        col((s) => s.message.shadow!.latencySumMs),
        col((s) => JSON.stringify(s.message.shadow!.predictions)),
        // Agreement is counted over label comparisons only; a regressor's comparisons are its difference histogram.
        col((s) => (s.message.shadow!.agreed === undefined ? 0 : s.message.shadow!.compared)),
        col((s) => s.message.shadow!.agreed ?? 0),
        col((s) => intArray(s.message.shadow!.diffBuckets)),
        col((s) => s.message.count),
        col((s) => s.message.errors),
        col((s) => intArray(s.message.latencyBuckets)),
        col((s) => JSON.stringify(s.message.predictions)),
        col((s) => s.message.shadow!.ended),
      ],
    );
    return Number(rows[0]?.n ?? 0);
  }
}
