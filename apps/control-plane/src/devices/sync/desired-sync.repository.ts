import { Injectable } from '@nestjs/common';
import { shadowDirectiveSchema, type ShadowDirective } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { rowsOf, toIso, toNumber } from '../../infra/database/sql-values.js';
import { REPORT_STATES, type ReportState } from '@fleetline/protocol';
import type { DesiredStateRow } from './desired-messages.js';

/** Reads what a batch of devices should run, for the hello answer: one query per batch. */
@Injectable()
export class DesiredSyncRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Every assignment of the given live devices, plus the unassignments a device may not have
   * seen yet (a model it still runs, or whose last report is older than the unassignment).
   */
  async desiredStates(deviceIds: string[]): Promise<DesiredStateRow[]> {
    if (deviceIds.length === 0) return [];
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT m.device_id, m.model, m.desired_version, m.desired_revision, m.desired_rollout_id, m.desired_action,
                m.desired_timeout_seconds, m.desired_at, m.desired_variant, m.desired_shadow,
                m.report_version, m.report_revision, m.report_state, m.active_version, m.previous_version
           FROM device_models m
           JOIN devices d ON d.id = m.device_id AND d.decommissioned_at IS NULL
          WHERE m.device_id = ANY($1::text[])
            AND (m.desired_version IS NOT NULL
                 OR (m.desired_revision > 0 AND (m.active_version IS NOT NULL OR m.report_revision IS NULL OR m.report_revision < m.desired_revision)))`,
        [deviceIds],
      ),
    );
    return rows.map((r) => ({
      deviceId: String(r['device_id']),
      model: String(r['model']),
      version: r['desired_version'] === null ? null : String(r['desired_version']),
      revision: toNumber(r['desired_revision']),
      rolloutId: r['desired_rollout_id'] === null ? null : String(r['desired_rollout_id']),
      action: r['desired_action'] === null ? null : (String(r['desired_action']) as DesiredStateRow['action']),
      shadow: shadowFromValue(r['desired_shadow']),
      timeoutSeconds: r['desired_timeout_seconds'] === null ? null : toNumber(r['desired_timeout_seconds']),
      variant: r['desired_variant'] === null || r['desired_variant'] === undefined ? null : String(r['desired_variant']),
      assignedAt: toIso(r['desired_at']) ?? new Date().toISOString(),
      ...storedReportOf(r),
    }));
  }

  /**
   * Those of the given devices the control plane holds no inventory for (enrolled without one, or
   * a database restored from before it came): their hello is answered with `report-inventory`,
   * because agents send it on change only (device-agent inventory-due.logic.ts).
   */
  async withoutInventory(deviceIds: string[]): Promise<string[]> {
    if (deviceIds.length === 0) return [];
    const rows = rowsOf(
      await this.dataSource.query(`SELECT id FROM devices WHERE id = ANY($1::text[]) AND inventory IS NULL AND decommissioned_at IS NULL`, [deviceIds]),
    );
    return rows.map((r) => String(r['id']));
  }
}

/** A stored directive (jsonb: an object from PostgreSQL, text from some drivers); one that no longer decodes is left out. */
function shadowFromValue(value: unknown): ShadowDirective | null {
  if (value === null || value === undefined) return null;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return null;
    }
  }
  const r = shadowDirectiveSchema.safeParse(parsed);
  return r.success ? r.data : null;
}

/** The latest report stored for the row's device and model, when there is one (sent so the device need not repeat it). */
function storedReportOf(r: Record<string, unknown>): Pick<DesiredStateRow, 'stored'> {
  const state = r['report_state'];
  const version = r['report_version'];
  const revision = r['report_revision'];
  if (typeof state !== 'string' || !(REPORT_STATES as readonly string[]).includes(state) || version === null || revision === null) return {};
  const nullable = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
  return {
    stored: {
      version: String(version),
      revision: toNumber(revision),
      state: state as ReportState,
      activeVersion: nullable(r['active_version']),
      previousVersion: nullable(r['previous_version']),
    },
  };
}
