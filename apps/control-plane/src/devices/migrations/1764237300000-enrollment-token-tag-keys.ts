import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Tag keys a device enrolling with the token may set itself (default none: every tag comes from
 * the token or an operator). Existing tokens keep their expiry and use limits as they were;
 * new ones get a default expiry and one use unless made unlimited explicitly (service, not schema).
 */
export class EnrollmentTokenTagKeys1764237300000 implements MigrationInterface {
  name = 'EnrollmentTokenTagKeys1764237300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE enrollment_tokens ADD COLUMN device_tag_keys text[] NOT NULL DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE enrollment_tokens DROP COLUMN device_tag_keys`);
  }
}
