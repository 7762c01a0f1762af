import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Running counts behind the fleet summary, so that reading it costs O(models × versions) instead
 * of counting 1,000,000 device rows on every poll.
 *
 *  - `fleet_count_deltas`: append-only. Statement-level triggers on `devices` and `device_models`
 *    (transition tables) add, in the statement that changed the rows, one row per group whose
 *    count moved: `presence` ('online' | 'offline' | 'decommissioned') for devices, `model` +
 *    `version` (the active version, null for none) for device_models. Every writer is covered,
 *    whichever code path or replica runs it (enrollment, presence flushes, replica sweeps,
 *    decommission, report ingest, assignments, cascading deletes), and a rolled-back write rolls
 *    its deltas back with it. Only inserts: concurrent writers never wait for one counter row.
 *  - `fleet_counts`: the deltas folded together (FleetCountsCompactor, every few seconds, under
 *    a transaction-level advisory lock so replicas take turns).
 *  A count is the sum over both tables in one statement (one snapshot): a compaction moves rows
 *  from one table to the other in one transaction, so a reader sees them exactly once.
 *
 * Neither table has a key: everything is summed on read, so a duplicate group is harmless.
 * The backfill runs after the triggers exist and while this transaction holds SHARE ROW EXCLUSIVE
 * on both tables (CREATE TRIGGER takes it too), so a replica still running the previous release
 * cannot write in between: each row is counted by the backfill or by a trigger, never both.
 */
export class FleetCounts1764239400000 implements MigrationInterface {
  name = 'FleetCounts1764239400000';

  async up(q: QueryRunner): Promise<void> {
    for (const table of ['fleet_counts', 'fleet_count_deltas']) {
      await q.query(`
        CREATE TABLE ${table} (
          presence text CHECK (presence IN ('online', 'offline', 'decommissioned')),
          model text,
          version text,
          devices bigint NOT NULL,
          CHECK ((presence IS NULL) <> (model IS NULL))
        )`);
    }
    await q.query(`LOCK TABLE devices, device_models IN SHARE ROW EXCLUSIVE MODE`);

    // The three cases share one function per table; PL/pgSQL plans each branch on first use, so
    // a branch naming a transition table its trigger does not have is never planned.
    const presence = (row: string): string =>
      `CASE WHEN ${row}.decommissioned_at IS NOT NULL THEN 'decommissioned' WHEN ${row}.online THEN 'online' ELSE 'offline' END`;
    await q.query(`
      CREATE FUNCTION fleet_count_devices() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO fleet_count_deltas (presence, devices)
            SELECT ${presence('n')}, count(*) FROM new_rows n GROUP BY 1;
        ELSIF TG_OP = 'DELETE' THEN
          INSERT INTO fleet_count_deltas (presence, devices)
            SELECT ${presence('o')}, -count(*) FROM old_rows o GROUP BY 1;
        ELSE
          -- Most updates (last_seen_at, inventory, tags, seqs) move nothing and insert nothing.
          INSERT INTO fleet_count_deltas (presence, devices)
            SELECT p, sum(d) FROM (SELECT ${presence('n')} AS p, 1 AS d FROM new_rows n
                                   UNION ALL SELECT ${presence('o')}, -1 FROM old_rows o) x
             GROUP BY p HAVING sum(d) <> 0;
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE FUNCTION fleet_count_device_models() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO fleet_count_deltas (model, version, devices)
            SELECT model, active_version, count(*) FROM new_rows GROUP BY 1, 2;
        ELSIF TG_OP = 'DELETE' THEN
          INSERT INTO fleet_count_deltas (model, version, devices)
            SELECT model, active_version, -count(*) FROM old_rows GROUP BY 1, 2;
        ELSE
          INSERT INTO fleet_count_deltas (model, version, devices)
            SELECT model, active_version, sum(d) FROM (SELECT model, active_version, 1 AS d FROM new_rows
                                                      UNION ALL SELECT model, active_version, -1 FROM old_rows) x
             GROUP BY 1, 2 HAVING sum(d) <> 0;
        END IF;
        RETURN NULL;
      END $$`);
    // TRUNCATE fires no row or statement trigger above; it empties the table's share of the counts.
    await q.query(`
      CREATE FUNCTION fleet_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_TABLE_NAME = 'devices' THEN
          DELETE FROM fleet_counts WHERE presence IS NOT NULL;
          DELETE FROM fleet_count_deltas WHERE presence IS NOT NULL;
        ELSE
          DELETE FROM fleet_counts WHERE model IS NOT NULL;
          DELETE FROM fleet_count_deltas WHERE model IS NOT NULL;
        END IF;
        RETURN NULL;
      END $$`);
    for (const [table, fn] of [
      ['devices', 'fleet_count_devices'],
      ['device_models', 'fleet_count_device_models'],
    ] as const) {
      await q.query(
        `CREATE TRIGGER ${table}_fleet_count_insert AFTER INSERT ON ${table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await q.query(
        `CREATE TRIGGER ${table}_fleet_count_update AFTER UPDATE ON ${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await q.query(
        `CREATE TRIGGER ${table}_fleet_count_delete AFTER DELETE ON ${table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await q.query(`CREATE TRIGGER ${table}_fleet_count_truncate AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION fleet_count_truncate()`);
    }

    await q.query(`INSERT INTO fleet_counts (presence, devices) SELECT ${presence('d')}, count(*) FROM devices d GROUP BY 1`);
    await q.query(`INSERT INTO fleet_counts (model, version, devices) SELECT model, active_version, count(*) FROM device_models GROUP BY 1, 2`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['devices', 'device_models']) {
      for (const op of ['insert', 'update', 'delete', 'truncate']) await q.query(`DROP TRIGGER ${table}_fleet_count_${op} ON ${table}`);
    }
    await q.query(`DROP FUNCTION fleet_count_devices(), fleet_count_device_models(), fleet_count_truncate()`);
    await q.query(`DROP TABLE fleet_count_deltas`);
    await q.query(`DROP TABLE fleet_counts`);
  }
}
