import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Builds (variants) of a version: each artifact belongs to one named build, and the builds are
 * ranked in the order the upload declared them (the order devices prefer them in). NULL variant:
 * the `default` build, which is what every version uploaded before builds existed is.
 */
export class ArtifactVariants1764236400000 implements MigrationInterface {
  name = 'ArtifactVariants1764236400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE artifacts ADD COLUMN variant text, ADD COLUMN variant_rank smallint NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE artifacts DROP COLUMN variant, DROP COLUMN variant_rank`);
  }
}
