import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Telemetry per build (variant) of a version, so gates and people can compare an int8 NPU build
 * with the fp32 CPU build of the same version. '' is "not named" (agents before variants); the
 * rollup key gains the variant, which keeps it independent of the fleet size (a version has a
 * handful of builds).
 */
export class TelemetryVariant1764236400003 implements MigrationInterface {
  name = 'TelemetryVariant1764236400003';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE telemetry_samples ADD COLUMN variant text NOT NULL DEFAULT ''`);
    await q.query(`ALTER TABLE telemetry_minute ADD COLUMN variant text NOT NULL DEFAULT ''`);
    await q.query(`ALTER TABLE telemetry_minute DROP CONSTRAINT telemetry_minute_pkey`);
    await q.query(`ALTER TABLE telemetry_minute ADD PRIMARY KEY (model, version, variant, cohort, minute)`);
  }

  async down(q: QueryRunner): Promise<void> {
    // Rows of different builds of one (model, version, cohort, minute) would collide: fold them first.
    await q.query(`DELETE FROM telemetry_minute WHERE variant <> ''`);
    await q.query(`ALTER TABLE telemetry_minute DROP CONSTRAINT telemetry_minute_pkey`);
    await q.query(`ALTER TABLE telemetry_minute ADD PRIMARY KEY (model, version, cohort, minute)`);
    await q.query(`ALTER TABLE telemetry_minute DROP COLUMN variant`);
    await q.query(`ALTER TABLE telemetry_samples DROP COLUMN variant`);
  }
}
