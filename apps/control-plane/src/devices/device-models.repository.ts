import { Injectable } from '@nestjs/common';
import type { DesiredModel, ShadowDirective } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { COMPATIBILITY_KEY_SQL, type CompatibilityProjection } from './device-capabilities.js';
import type { IncomingReport, ReportFloors } from './reports/report-ordering.js';
import { toIso, toNumber, rowsOf } from '../infra/database/sql-values.js';

export interface DesiredRow {
  deviceId: string;
  model: string;
  version: string;
  rolloutId: string | null;
  action: DesiredModel['action'];
  /** Set for action shadow. */
  shadow: ShadowDirective | null;
  timeoutSeconds: number | null;
  /** The build chosen for the device; null: none chosen, the device picks (or refuses). */
  variant: string | null;
}

export interface AssignedRow {
  deviceId: string;
  model: string;
  revision: number;
  assignedAt: string;
}

export interface AppliedReportRow {
  deviceId: string;
  model: string;
  desiredRevision: number;
}

/** SQL of device_models: desired state (written by assignments) and reported state (written by ingest). */
@Injectable()
export class DeviceModelsRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * The live devices of a batch that have an inventory, grouped by the part of it compatibility
   * depends on: one grouped query, a handful of groups however large the batch.
   */
  async compatibilityGroups(deviceIds: readonly string[]): Promise<{ projection: CompatibilityProjection; deviceIds: string[] }[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT ${COMPATIBILITY_KEY_SQL} AS k, array_agg(d.id) AS ids FROM devices d
          WHERE d.id = ANY($1::text[]) AND d.inventory IS NOT NULL AND d.decommissioned_at IS NULL GROUP BY 1`,
        [[...deviceIds]],
      ),
    );
    return rows.map((r) => ({ projection: JSON.parse(String(r['k'])) as CompatibilityProjection, deviceIds: r['ids'] as string[] }));
  }

  /**
   * One upsert for the whole batch; the revision grows by one per assignment. Devices that do
   * not exist or are decommissioned are skipped by the join (and not returned).
   */
  async upsertDesired(rows: DesiredRow[]): Promise<AssignedRow[]> {
    if (rows.length === 0) return [];
    const result = rowsOf(
      await this.dataSource.query(
        `INSERT INTO device_models (device_id, model, desired_version, desired_revision, desired_rollout_id, desired_action, desired_at, desired_timeout_seconds,
                                    desired_variant, desired_shadow)
       SELECT a.device_id, a.model, a.version, 1, a.rollout_id, a.action, now(), a.timeout_seconds, a.variant, a.shadow::jsonb
         FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[])
              AS a(device_id, model, version, rollout_id, action, timeout_seconds, variant, shadow)
         JOIN devices d ON d.id = a.device_id AND d.decommissioned_at IS NULL
       ON CONFLICT (device_id, model) DO UPDATE SET
         desired_version = EXCLUDED.desired_version,
         desired_revision = device_models.desired_revision + 1,
         desired_rollout_id = EXCLUDED.desired_rollout_id,
         desired_action = EXCLUDED.desired_action,
         desired_at = EXCLUDED.desired_at,
         desired_timeout_seconds = EXCLUDED.desired_timeout_seconds,
         desired_variant = EXCLUDED.desired_variant,
         desired_shadow = EXCLUDED.desired_shadow
       RETURNING device_id, model, desired_revision, desired_at`,
        [
          rows.map((r) => r.deviceId),
          rows.map((r) => r.model),
          rows.map((r) => r.version),
          rows.map((r) => r.rolloutId),
          rows.map((r) => r.action),
          rows.map((r) => r.timeoutSeconds),
          rows.map((r) => r.variant),
          rows.map((r) => (r.shadow ? JSON.stringify(r.shadow) : null)),
        ],
      ),
    );
    return result.map((r) => ({
      deviceId: String(r['device_id']),
      model: String(r['model']),
      revision: toNumber(r['desired_revision']),
      assignedAt: toIso(r['desired_at']) ?? new Date().toISOString(),
    }));
  }

  /** Clears the desired version (revision still grows, so a late report of the old assignment stays "older"). */
  async clearDesired(pairs: { deviceId: string; model: string }[]): Promise<AssignedRow[]> {
    if (pairs.length === 0) return [];
    const result = rowsOf(
      await this.dataSource.query(
        `UPDATE device_models m
          SET desired_version = NULL, desired_revision = m.desired_revision + 1, desired_rollout_id = NULL, desired_action = NULL, desired_at = now(),
              desired_timeout_seconds = NULL, desired_variant = NULL
         FROM unnest($1::text[], $2::text[]) AS p(device_id, model)
        WHERE m.device_id = p.device_id AND m.model = p.model AND m.desired_version IS NOT NULL
      RETURNING m.device_id, m.model, m.desired_revision, m.desired_at`,
        [pairs.map((p) => p.deviceId), pairs.map((p) => p.model)],
      ),
    );
    return result.map((r) => ({
      deviceId: String(r['device_id']),
      model: String(r['model']),
      revision: toNumber(r['desired_revision']),
      assignedAt: toIso(r['desired_at']) ?? new Date().toISOString(),
    }));
  }

  /**
   * Applies a batch of update reports in one transaction:
   *  1. locks the batch's live devices (id order, so concurrent batches on several replicas
   *     cannot deadlock) and reads the last applied seq of each (device, model) in the batch;
   *  2. `plan` (pure, report-ordering.ts) picks what to apply;
   *  3. one set-based upsert into device_models (which moves each pair's last_report_seq), one
   *     set-based update of devices.last_report_seq.
   * The device lock makes the per-pair seq check hold across replicas sharing one database.
   * It is FOR NO KEY UPDATE, not FOR UPDATE: an assignment inserting a device_models row takes
   * FOR KEY SHARE on the device for its foreign key while holding that row, and FOR UPDATE would
   * conflict with it (lock cycle with this batch's upsert).
   */
  async applyReports<P extends { apply: IncomingReport[]; deviceSeq: Map<string, number> }>(
    keys: readonly { deviceId: string; model: string }[],
    plan: (floors: ReportFloors) => P,
  ): Promise<{ plan: P; applied: AppliedReportRow[] }> {
    const deviceIds = [...new Set(keys.map((k) => k.deviceId))].sort();
    const pairs = [...new Map(keys.map((k) => [`${k.deviceId}\u0000${k.model}`, k])).values()];
    return this.dataSource.transaction(async (manager) => {
      const locked = rowsOf(
        await manager.query(`SELECT id FROM devices WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL ORDER BY id FOR NO KEY UPDATE`, [deviceIds]),
      );
      const floors = new Map<string, Map<string, number>>(locked.map((r) => [String(r['id']), new Map()]));
      if (floors.size > 0) {
        const seqs = rowsOf(
          await manager.query(
            `SELECT m.device_id, m.model, m.last_report_seq
               FROM device_models m
               JOIN unnest($1::text[], $2::text[]) AS p(device_id, model) ON m.device_id = p.device_id AND m.model = p.model`,
            [pairs.map((p) => p.deviceId), pairs.map((p) => p.model)],
          ),
        );
        for (const r of seqs) floors.get(String(r['device_id']))?.set(String(r['model']), toNumber(r['last_report_seq']));
      }
      const result = plan(floors);
      if (result.apply.length === 0) return { plan: result, applied: [] };
      const a = result.apply;
      // Rule 3 of report-ordering.ts: an older revision updates only what runs on the device.
      const applied = rowsOf(
        await manager.query(
          `INSERT INTO device_models AS m (device_id, model, report_version, report_state, report_revision, report_at,
                                         active_version, previous_version, failure_code, failure_message, last_report_seq, variant)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[],
                              $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[])
         ON CONFLICT (device_id, model) DO UPDATE SET
           last_report_seq = EXCLUDED.last_report_seq,
           active_version = EXCLUDED.active_version,
           previous_version = EXCLUDED.previous_version,
           report_version = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.report_version ELSE m.report_version END,
           report_state = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.report_state ELSE m.report_state END,
           report_at = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.report_at ELSE m.report_at END,
           -- An older agent names no build: keep what the control plane chose for this revision.
           -- A refusal or a removal installed none.
           variant = CASE WHEN EXCLUDED.report_revision >= m.desired_revision
                          THEN coalesce(EXCLUDED.variant, CASE WHEN EXCLUDED.report_state NOT IN ('incompatible', 'removed') THEN m.desired_variant END)
                          ELSE m.variant END,
           failure_code = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.failure_code ELSE m.failure_code END,
           failure_message = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.failure_message ELSE m.failure_message END,
           report_revision = CASE WHEN EXCLUDED.report_revision >= m.desired_revision THEN EXCLUDED.report_revision ELSE m.report_revision END
         WHERE m.last_report_seq < EXCLUDED.last_report_seq
         RETURNING device_id, model, desired_revision`,
          [
            a.map((r) => r.deviceId),
            a.map((r) => r.report.model),
            a.map((r) => r.report.version),
            a.map((r) => r.report.state),
            a.map((r) => r.report.revision),
            a.map((r) => r.report.at),
            a.map((r) => r.report.activeVersion),
            a.map((r) => r.report.previousVersion),
            a.map((r) => r.report.failure?.code ?? null),
            a.map((r) => r.report.failure?.message ?? null),
            a.map((r) => r.report.seq),
            a.map((r) => r.report.variant ?? null),
          ],
        ),
      );
      const seqIds = [...result.deviceSeq.keys()];
      await manager.query(
        `UPDATE devices d SET last_report_seq = u.seq, last_seen_at = GREATEST(d.last_seen_at, now())
           FROM unnest($1::text[], $2::bigint[]) AS u(id, seq)
          WHERE d.id = u.id AND d.last_report_seq < u.seq`,
        [seqIds, seqIds.map((id) => result.deviceSeq.get(id)!)],
      );
      return {
        plan: result,
        applied: applied.map((r) => ({ deviceId: String(r['device_id']), model: String(r['model']), desiredRevision: toNumber(r['desired_revision']) })),
      };
    });
  }
}
