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

export interface AwaitingArtifact {
  model: string;
  version: string;
  targetPath: string;
  sha256: string;
  size: number;
  runtime: string;
  framework: string | null;
  variant: string | null;
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

  /** Every artifact of a published version: what targets metadata must keep listing. */
  async publishedArtifacts(manager: EntityManager): Promise<{ targetPath: string; sha256: string; size: number }[]> {
    const rows: { target_path: string; sha256: string; size: string }[] = await manager.query(
      `SELECT a.target_path, a.sha256, a.size FROM artifacts a
         JOIN model_versions v ON v.model = a.model AND v.version = a.version
        WHERE v.status = 'published'`,
    );
    return rows.map((r) => ({ targetPath: r.target_path, sha256: r.sha256, size: Number(r.size) }));
  }

  /** Artifacts of versions uploaded with TUF_KEYS=offline that no signed targets lists yet, oldest first. */
  async awaitingArtifacts(manager: EntityManager = this.dataSource.manager): Promise<AwaitingArtifact[]> {
    const rows: {
      model: string;
      version: string;
      target_path: string;
      sha256: string;
      size: string;
      runtime: string;
      framework: string | null;
      variant: string | null;
    }[] = await manager.query(
      `SELECT a.model, a.version, a.target_path, a.sha256, a.size, a.runtime, a.framework, a.variant FROM artifacts a
         JOIN model_versions v ON v.model = a.model AND v.version = a.version
        WHERE v.status = 'awaiting-signature'
        ORDER BY v.created_at, a.model, a.version, a.position`,
    );
    return rows.map((r) => ({
      model: r.model,
      version: r.version,
      targetPath: r.target_path,
      sha256: r.sha256,
      size: Number(r.size),
      runtime: r.runtime,
      framework: r.framework,
      variant: r.variant,
    }));
  }

  /** Marks versions as listed in signed targets metadata (distributable). */
  async markPublished(manager: EntityManager, versions: readonly { model: string; version: string }[]): Promise<void> {
    if (versions.length === 0) return;
    await manager.query(
      `UPDATE model_versions v SET status = 'published'
         FROM unnest($1::text[], $2::text[]) AS p(model, version)
        WHERE v.model = p.model AND v.version = p.version`,
      [versions.map((v) => v.model), versions.map((v) => v.version)],
    );
  }

  /**
   * Serialises writers across replicas until the caller's transaction ends; everything a
   * writer reads after this is the latest committed state.
   */
  async lockForWrite(manager: EntityManager): Promise<void> {
    await manager.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [TUF_WRITE_LOCK]);
  }
}
