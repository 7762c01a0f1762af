import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The shadow directive of an assignment with action `shadow` (protocol shadowDirectiveSchema), kept
 * so the desired state re-sent on a hello says the same as the one first published.
 */
export class DeviceModelShadow1764241200000 implements MigrationInterface {
  name = 'DeviceModelShadow1764241200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models ADD COLUMN desired_shadow jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models DROP COLUMN desired_shadow`);
  }
}
