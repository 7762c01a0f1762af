import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { rowsOf, toNumber } from '../infra/database/sql-values.js';

/** Devices per presence state and per active version of each model, as the running counts say. */
export interface FleetCounts {
  presence: { online: number; offline: number; decommissioned: number };
  /** One entry per (model, active version) with devices; `version` null = a row with nothing active yet. */
  versions: { model: string; version: string | null; devices: number }[];
}

/** Two replicas compacting at once would only do the work twice; the second one skips its turn. */
const COMPACTION_LOCK_SQL = `SELECT pg_try_advisory_xact_lock(hashtext('fleetline.fleet-counts-compaction')) AS ok`;

/**
 * The running counts of the fleet (tables and triggers: migrations/1764239400000-fleet-counts.ts).
 * Reading sums the compacted counts and the deltas not folded in yet, in one statement.
 */
@Injectable()
export class FleetCountsRepository {
  constructor(private readonly dataSource: DataSource) {}

  async read(manager: EntityManager = this.dataSource.manager): Promise<FleetCounts> {
    const rows = rowsOf(
      await manager.query(
        `SELECT presence, model, version, sum(devices) AS devices
           FROM (SELECT presence, model, version, devices FROM fleet_counts
                 UNION ALL SELECT presence, model, version, devices FROM fleet_count_deltas) c
          GROUP BY presence, model, version
         HAVING sum(devices) <> 0`,
      ),
    );
    const counts: FleetCounts = { presence: { online: 0, offline: 0, decommissioned: 0 }, versions: [] };
    for (const row of rows) {
      const devices = toNumber(row['devices']);
      const presence = row['presence'] as keyof FleetCounts['presence'] | null;
      if (presence !== null) counts.presence[presence] = devices;
      else counts.versions.push({ model: String(row['model']), version: (row['version'] as string | null) ?? null, devices });
    }
    return counts;
  }

  /**
   * Folds the committed deltas into fleet_counts in one transaction (the deltas move, the counts
   * are rewritten summed: O(models × versions) rows). Answers how many deltas it folded; 0 when
   * there were none or another replica held the turn.
   */
  async compact(): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const [lock] = rowsOf(await manager.query(COMPACTION_LOCK_SQL));
      if (lock?.['ok'] !== true) return 0;
      const [pending] = rowsOf(await manager.query(`SELECT EXISTS (SELECT 1 FROM fleet_count_deltas) AS any`));
      if (pending?.['any'] !== true) return 0;
      const [moved] = rowsOf(
        await manager.query(
          `WITH moved AS (DELETE FROM fleet_count_deltas RETURNING presence, model, version, devices),
                kept AS (DELETE FROM fleet_counts RETURNING presence, model, version, devices),
                folded AS (
                  INSERT INTO fleet_counts (presence, model, version, devices)
                  SELECT presence, model, version, sum(devices)
                    FROM (SELECT * FROM moved UNION ALL SELECT * FROM kept) c
                   GROUP BY presence, model, version
                  HAVING sum(devices) <> 0)
           SELECT count(*) AS n FROM moved`,
        ),
      );
      return toNumber(moved?.['n'] ?? 0);
    });
  }
}
