import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Models1764232000000 implements MigrationInterface {
  name = 'Models1764232000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE models (
        name text PRIMARY KEY,
        description text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Semver precedence (semver.org §11) as columns so "newest first" is an index scan and
    // keyset pagination is a row comparison. prerelease_sort is built by semver-sort-key.ts and
    // compared bytewise (COLLATE "C"); a release sorts after all of its pre-releases.
    await q.query(`
      CREATE TABLE model_versions (
        model text NOT NULL REFERENCES models (name) ON DELETE CASCADE,
        version text NOT NULL,
        major integer NOT NULL,
        minor integer NOT NULL,
        patch integer NOT NULL,
        prerelease text,
        prerelease_sort text COLLATE "C" NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        reference_distribution jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, version)
      )`);
    await q.query(`CREATE INDEX model_versions_precedence_idx ON model_versions (model, major DESC, minor DESC, patch DESC, prerelease_sort DESC)`);
    await q.query(`
      CREATE TABLE artifacts (
        id uuid PRIMARY KEY,
        model text NOT NULL,
        version text NOT NULL,
        file_name text NOT NULL,
        position smallint NOT NULL,
        sha256 text NOT NULL,
        size bigint NOT NULL,
        runtime text NOT NULL,
        framework text,
        compatibility jsonb NOT NULL DEFAULT '{}',
        storage_key text NOT NULL,
        target_path text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (model, version) REFERENCES model_versions (model, version) ON DELETE CASCADE,
        UNIQUE (model, version, file_name)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE artifacts`);
    await q.query(`DROP TABLE model_versions`);
    await q.query(`DROP TABLE models`);
  }
}
