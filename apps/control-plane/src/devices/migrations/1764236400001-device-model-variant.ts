import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which build (variant) of a version a device was assigned (`desired_variant`, chosen from its
 * inventory, so a re-sent desired state names the same build) and which build it reported for the
 * version it reports on (`variant`: what it actually downloaded and installed).
 */
export class DeviceModelVariant1764236400001 implements MigrationInterface {
  name = 'DeviceModelVariant1764236400001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models ADD COLUMN desired_variant text, ADD COLUMN variant text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models DROP COLUMN desired_variant, DROP COLUMN variant`);
  }
}
