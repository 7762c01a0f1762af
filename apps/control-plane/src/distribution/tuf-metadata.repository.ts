import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { TopLevelRole } from './tuf-keys.js';
import type { SignedMetadata } from './tuf-signing.js';

/**
 * Name of the transaction-scoped advisory lock that serialises writers of the TUF repository,
 * hashed to a lock key in SQL so it cannot collide with other features' numeric keys.
 */
const TUF_WRITE_LOCK = 'fleetline.tuf-repository';

interface Row {
  role: TopLevelRole;
  version: number;
  json: string;
  expires_at: Date | string;
}

function toSigned(row: Row | undefined): SignedMetadata | undefined {
  return row ? { role: row.role, version: Number(row.version), json: row.json, expiresAt: new Date(row.expires_at) } : undefined;
}

@Injectable()
export class TufMetadataRepository {
  constructor(private readonly dataSource: DataSource) {}

  async latest(role: TopLevelRole, manager: EntityManager = this.dataSource.manager): Promise<SignedMetadata | undefined> {
    const rows: Row[] = await manager.query(`SELECT role, version, json, expires_at FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`, [role]);
    return toSigned(rows[0]);
  }

  async byVersion(role: TopLevelRole, version: number): Promise<SignedMetadata | undefined> {
    const rows: Row[] = await this.dataSource.query(`SELECT role, version, json, expires_at FROM tuf_metadata WHERE role = $1 AND version = $2`, [
      role,
      version,
    ]);
    return toSigned(rows[0]);
  }

  /** Every version of a role, oldest first (roots: a handful of rows, one per rotation or renewal). */
  async allVersions(role: TopLevelRole): Promise<SignedMetadata[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT role, version, json, expires_at FROM tuf_metadata WHERE role = $1 ORDER BY version`, [role]);
    return rows.map((r) => toSigned(r)!);
  }

  /** Latest version of every role, in one round trip. */
  async latestAll(manager: EntityManager = this.dataSource.manager): Promise<Map<TopLevelRole, SignedMetadata>> {
    const rows: Row[] = await manager.query(`SELECT DISTINCT ON (role) role, version, json, expires_at FROM tuf_metadata ORDER BY role, version DESC`);
    return new Map(rows.map((r) => [r.role, toSigned(r) as SignedMetadata]));
  }

  async insert(manager: EntityManager, rows: readonly SignedMetadata[]): Promise<void> {
    if (rows.length === 0) return;
    await manager.query(
      `INSERT INTO tuf_metadata (role, version, json, expires_at)
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[])`,
      [rows.map((r) => r.role), rows.map((r) => r.version), rows.map((r) => r.json), rows.map((r) => r.expiresAt.toISOString())],
    );
  }

  /** Every uploaded artifact's target path, digest and length (what targets metadata must list). */
  async publishedArtifacts(manager: EntityManager): Promise<{ targetPath: string; sha256: string; size: number }[]> {
    const rows: { target_path: string; sha256: string; size: string }[] = await manager.query(`SELECT target_path, sha256, size FROM artifacts`);
    return rows.map((r) => ({ targetPath: r.target_path, sha256: r.sha256, size: Number(r.size) }));
  }

  /**
   * Serialises writers across replicas until the caller's transaction ends; everything a
   * writer reads after this is the latest committed state.
   */
  async lockForWrite(manager: EntityManager): Promise<void> {
    await manager.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [TUF_WRITE_LOCK]);
  }
}
