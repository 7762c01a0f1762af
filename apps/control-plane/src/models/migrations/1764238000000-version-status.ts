import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Whether a version's artifacts are listed in signed targets metadata. With TUF_KEYS=offline an
 * upload is stored as `awaiting-signature` until the operator signs targets listing it; every
 * version uploaded before (signed online at upload) is `published`.
 */
export class VersionStatus1764238000000 implements MigrationInterface {
  name = 'VersionStatus1764238000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE model_versions ADD COLUMN status text NOT NULL DEFAULT 'published'`);
    await q.query(`ALTER TABLE model_versions ADD CONSTRAINT model_versions_status_check CHECK (status IN ('published', 'awaiting-signature'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE model_versions DROP COLUMN status`);
  }
}
