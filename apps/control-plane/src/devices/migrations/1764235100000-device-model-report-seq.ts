import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Orders update reports per (device, model) instead of per device (report-ordering.ts): each
 * device_models row keeps the seq of the last report applied to it.
 *
 * Existing rows start at their device's last_report_seq: every report at or below it was already
 * judged under the per-device rule, so nothing already ignored becomes applicable and no model can
 * step back to an older report. The agent re-states each model with a fresh seq on its next
 * connection, which is above that floor. `ADD COLUMN ... DEFAULT` with a constant rewrites no rows
 * (PostgreSQL 11+); the backfill is one set-based UPDATE.
 */
export class DeviceModelReportSeq1764235100000 implements MigrationInterface {
  name = 'DeviceModelReportSeq1764235100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models ADD COLUMN last_report_seq bigint NOT NULL DEFAULT -1`);
    await q.query(`UPDATE device_models m SET last_report_seq = d.last_report_seq FROM devices d WHERE d.id = m.device_id AND d.last_report_seq > -1`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models DROP COLUMN last_report_seq`);
  }
}
