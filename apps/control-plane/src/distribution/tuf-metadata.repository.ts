import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { TOP_LEVEL_ROLES, type TopLevelRole } from './tuf-keys.js';
import type { SignedMetadata } from './tuf-signing.js';

/**
 * Name of the transaction-scoped advisory lock that serialises writers of the TUF repository,
 * hashed to a lock key in SQL so it cannot collide with other features' numeric keys.
 */
const TUF_WRITE_LOCK = 'fleetline.tuf-repository';

interface Row {
  role: string;
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

  async latest(role: string, manager: EntityManager = this.dataSource.manager): Promise<SignedMetadata | undefined> {
    const rows: Row[] = await manager.query(`SELECT role, version, json, expires_at FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`, [role]);
    return toSigned(rows[0]);
  }

  async byVersion(role: string, version: number): Promise<SignedMetadata | undefined> {
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

  /** Latest version of every top-level role, in one round trip (bins are read by the versions snapshot lists). */
  async latestAll(manager: EntityManager = this.dataSource.manager): Promise<Map<TopLevelRole, SignedMetadata>> {
    const rows: Row[] = await manager.query(
      `SELECT DISTINCT ON (role) role, version, json, expires_at FROM tuf_metadata WHERE role = ANY($1::text[]) ORDER BY role, version DESC`,
      [TOP_LEVEL_ROLES],
    );
    return new Map(rows.map((r) => [r.role as TopLevelRole, toSigned(r) as SignedMetadata]));
  }

  /** The given (role, version) pairs, one query: the bins a snapshot points at. */
  async atVersions(manager: EntityManager, pairs: ReadonlyMap<string, number>): Promise<SignedMetadata[]> {
    if (pairs.size === 0) return [];
    const rows: Row[] = await manager.query(
      `SELECT t.role, t.version, t.json, t.expires_at FROM tuf_metadata t
         JOIN unnest($1::text[], $2::int[]) AS p(role, version) ON t.role = p.role AND t.version = p.version`,
      [[...pairs.keys()], [...pairs.values()]],
    );
    return rows.map((r) => toSigned(r)!);
  }

  /** Of the given (role, version) pairs, those expiring before `before` (the bins due for renewal). */
  async expiringAt(manager: EntityManager, pairs: ReadonlyMap<string, number>, before: Date): Promise<SignedMetadata[]> {
    if (pairs.size === 0) return [];
    const rows: Row[] = await manager.query(
      `SELECT t.role, t.version, t.json, t.expires_at FROM tuf_metadata t
         JOIN unnest($1::text[], $2::int[]) AS p(role, version) ON t.role = p.role AND t.version = p.version
        WHERE t.expires_at < $3`,
      [[...pairs.keys()], [...pairs.values()], before.toISOString()],
    );
    return rows.map((r) => toSigned(r)!);
  }

  /** Highest stored version of each of `roles` (absent: never signed), so a re-layout never reuses a version. */
  async maxVersions(manager: EntityManager, roles: readonly string[]): Promise<Map<string, number>> {
    if (roles.length === 0) return new Map();
    const rows: { role: string; version: number }[] = await manager.query(
      `SELECT role, max(version) AS version FROM tuf_metadata WHERE role = ANY($1::text[]) GROUP BY role`,
      [roles],
    );
    return new Map(rows.map((r) => [r.role, Number(r.version)]));
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
