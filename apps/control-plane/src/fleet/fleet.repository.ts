import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { toNumber, rowsOf } from '../devices/sql-values.js';

/**
 * Fleet-wide counts as GROUP BY queries over indexes (see the devices migration):
 * devices_presence_idx (online, id) WHERE decommissioned_at IS NULL for the online split and
 * device_models_model_active_idx (model, active_version, device_id) for versions per model.
 * Decommissioned devices have no device_models rows, so no join with devices is needed.
 */
@Injectable()
export class FleetRepository {
  constructor(private readonly dataSource: DataSource) {}

  async presenceCounts(): Promise<{ online: number; offline: number }> {
    const rows = rowsOf(await this.dataSource.query(`SELECT online, count(*) AS n FROM devices WHERE decommissioned_at IS NULL GROUP BY online`));
    let online = 0;
    let offline = 0;
    for (const row of rows) {
      if (row['online'] === true) online = toNumber(row['n']);
      else offline = toNumber(row['n']);
    }
    return { online, offline };
  }

  async activeVersionCounts(): Promise<{ model: string; version: string | null; devices: number }[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT model, active_version, count(*) AS n FROM device_models GROUP BY model, active_version ORDER BY model, active_version NULLS LAST`,
      ),
    );
    return rows.map((r) => ({ model: String(r['model']), version: (r['active_version'] as string | null) ?? null, devices: toNumber(r['n']) }));
  }
}
