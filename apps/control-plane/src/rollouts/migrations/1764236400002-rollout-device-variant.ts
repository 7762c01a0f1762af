import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The build (variant) of the version each rollout device was sent, then the one it reported taking. */
export class RolloutDeviceVariant1764236400002 implements MigrationInterface {
  name = 'RolloutDeviceVariant1764236400002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rollout_devices ADD COLUMN variant text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rollout_devices DROP COLUMN variant`);
  }
}
