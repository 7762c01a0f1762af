import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Hash bins (TAP 15) are delegated targets roles stored next to the top-level ones, one row per
 * signed version, served as `{N}.bins-0a.json`. The role check admits their names.
 */
export class TufBins1764241100000 implements MigrationInterface {
  name = 'TufBins1764241100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE tuf_metadata DROP CONSTRAINT tuf_metadata_role_check`);
    await q.query(`
      ALTER TABLE tuf_metadata ADD CONSTRAINT tuf_metadata_role_check
        CHECK (role IN ('root', 'targets', 'snapshot', 'timestamp') OR role ~ '^bins-[0-9a-f]{1,4}$')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM tuf_metadata WHERE role NOT IN ('root', 'targets', 'snapshot', 'timestamp')`);
    await q.query(`ALTER TABLE tuf_metadata DROP CONSTRAINT tuf_metadata_role_check`);
    await q.query(`ALTER TABLE tuf_metadata ADD CONSTRAINT tuf_metadata_role_check CHECK (role IN ('root', 'targets', 'snapshot', 'timestamp'))`);
  }
}
