import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Signed TUF metadata lives in the database (not on a replica's disk) so every replica serves
 * the same repository. Rows are immutable: a new version is a new row (TUF spec §5.3-5.6 clients
 * fetch `{N}.root.json`, `{N}.snapshot.json` and `{N}.targets.json` by version).
 */
export class TufMetadata1764232000001 implements MigrationInterface {
  name = 'TufMetadata1764232000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE tuf_metadata (
        role text NOT NULL CHECK (role IN ('root', 'targets', 'snapshot', 'timestamp')),
        version integer NOT NULL CHECK (version > 0),
        json text NOT NULL,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (role, version)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE tuf_metadata`);
  }
}
