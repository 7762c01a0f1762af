import type { Compatibility } from '@fleetline/protocol';
import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { VersionSortKey } from './semver-sort-key.js';
import type { VersionMetadata } from './version-metadata.js';

export interface ModelSummary {
  name: string;
  description: string | null;
  createdAt: Date;
  latestVersion: string | null;
  versionCount: number;
}

export interface VersionRow {
  model: string;
  version: string;
  metadata: VersionMetadata;
  referenceDistribution: Record<string, number> | null;
  createdAt: Date;
  sortKey: VersionSortKey;
  status: VersionStatus;
}

/** `awaiting-signature`: uploaded with TUF_KEYS=offline and not yet in signed targets metadata. */
export type VersionStatus = 'published' | 'awaiting-signature';

export interface ArtifactRow {
  id: string;
  model: string;
  version: string;
  fileName: string;
  /** Order of the file in the upload (the first file is the primary artifact). */
  position: number;
  sha256: string;
  size: number;
  runtime: string;
  framework: string | null;
  compatibility: Compatibility;
  /** The build the file belongs to (null: the `default` build). */
  variant: string | null;
  /** Preference of its build in the version's declared order (0 first). */
  variantRank: number;
  storageKey: string;
  targetPath: string;
}

interface RawVersion {
  model: string;
  version: string;
  metadata: VersionMetadata;
  reference_distribution: Record<string, number> | null;
  created_at: Date | string;
  major: number;
  minor: number;
  patch: number;
  prerelease: string | null;
  prerelease_sort: string;
  status: VersionStatus;
}

interface RawArtifact {
  id: string;
  model: string;
  version: string;
  file_name: string;
  position: number;
  sha256: string;
  size: string | number;
  runtime: string;
  framework: string | null;
  compatibility: Compatibility;
  variant: string | null;
  variant_rank: number;
  storage_key: string;
  target_path: string;
}

const VERSION_COLUMNS = 'model, version, metadata, reference_distribution, created_at, major, minor, patch, prerelease, prerelease_sort, status';
const ARTIFACT_COLUMNS =
  'id, model, version, file_name, position, sha256, size, runtime, framework, compatibility, variant, variant_rank, storage_key, target_path';
/** Semver precedence, newest first (see semver-sort-key.ts). */
const NEWEST_FIRST = 'major DESC, minor DESC, patch DESC, prerelease_sort DESC';

function toVersion(r: RawVersion): VersionRow {
  return {
    model: r.model,
    version: r.version,
    metadata: r.metadata,
    referenceDistribution: r.reference_distribution,
    createdAt: new Date(r.created_at),
    sortKey: { major: r.major, minor: r.minor, patch: r.patch, prerelease: r.prerelease, prereleaseSort: r.prerelease_sort },
    status: r.status,
  };
}

function toArtifact(r: RawArtifact): ArtifactRow {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    fileName: r.file_name,
    position: Number(r.position),
    sha256: r.sha256,
    size: Number(r.size),
    runtime: r.runtime,
    framework: r.framework,
    compatibility: r.compatibility,
    variant: r.variant ?? null,
    variantRank: Number(r.variant_rank ?? 0),
    storageKey: r.storage_key,
    targetPath: r.target_path,
  };
}

/** SQL of the models feature: models, model_versions and artifacts. */
@Injectable()
export class ModelsRepository {
  constructor(private readonly dataSource: DataSource) {}

  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(work);
  }

  /** Inserts a model; false when the name is taken. */
  async createModel(name: string, description: string | null): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(`INSERT INTO models (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name`, [
      name,
      description,
    ]);
    return rows.length === 1;
  }

  async modelExists(name: string): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(`SELECT 1 FROM models WHERE name = $1`, [name]);
    return rows.length === 1;
  }

  /** Models by name, keyset-paginated, each with its newest version and version count. */
  async listModels(limit: number, afterName?: string, onlyName?: string): Promise<ModelSummary[]> {
    const rows: { name: string; description: string | null; created_at: Date | string; latest_version: string | null; version_count: number }[] =
      await this.dataSource.query(
        `SELECT m.name, m.description, m.created_at,
                (SELECT v.version FROM model_versions v WHERE v.model = m.name ORDER BY ${NEWEST_FIRST} LIMIT 1) AS latest_version,
                (SELECT count(*)::int FROM model_versions v WHERE v.model = m.name) AS version_count
           FROM models m
          WHERE ($1::text IS NULL OR m.name > $1) AND ($2::text IS NULL OR m.name = $2)
          ORDER BY m.name
          LIMIT $3`,
        [afterName ?? null, onlyName ?? null, limit],
      );
    return rows.map((r) => ({
      name: r.name,
      description: r.description,
      createdAt: new Date(r.created_at),
      latestVersion: r.latest_version,
      versionCount: Number(r.version_count),
    }));
  }

  async versionExists(model: string, version: string): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(`SELECT 1 FROM model_versions WHERE model = $1 AND version = $2`, [model, version]);
    return rows.length === 1;
  }

  /** Inserts a version; false when it already exists. */
  async insertVersion(
    manager: EntityManager,
    v: {
      model: string;
      version: string;
      sortKey: VersionSortKey;
      metadata: VersionMetadata;
      referenceDistribution: Record<string, number> | null;
      status: VersionStatus;
    },
  ): Promise<boolean> {
    const rows: unknown[] = await manager.query(
      `INSERT INTO model_versions (model, version, major, minor, patch, prerelease, prerelease_sort, metadata, reference_distribution, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)
       ON CONFLICT (model, version) DO NOTHING RETURNING version`,
      [
        v.model,
        v.version,
        v.sortKey.major,
        v.sortKey.minor,
        v.sortKey.patch,
        v.sortKey.prerelease,
        v.sortKey.prereleaseSort,
        JSON.stringify(v.metadata),
        v.referenceDistribution ? JSON.stringify(v.referenceDistribution) : null,
        v.status,
      ],
    );
    return rows.length === 1;
  }

  async insertArtifacts(manager: EntityManager, artifacts: readonly ArtifactRow[]): Promise<void> {
    await manager.query(
      `INSERT INTO artifacts (id, model, version, file_name, position, sha256, size, runtime, framework, compatibility, storage_key, target_path, variant, variant_rank)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::jsonb[], $11::text[], $12::text[],
                            $13::text[], $14::smallint[])`,
      [
        artifacts.map((a) => a.id),
        artifacts.map((a) => a.model),
        artifacts.map((a) => a.version),
        artifacts.map((a) => a.fileName),
        artifacts.map((a) => a.position),
        artifacts.map((a) => a.sha256),
        artifacts.map((a) => String(a.size)),
        artifacts.map((a) => a.runtime),
        artifacts.map((a) => a.framework),
        artifacts.map((a) => JSON.stringify(a.compatibility)),
        artifacts.map((a) => a.storageKey),
        artifacts.map((a) => a.targetPath),
        artifacts.map((a) => a.variant),
        artifacts.map((a) => a.variantRank),
      ],
    );
  }

  /** Versions of a model, newest semver first, strictly older than `before` when given. */
  async listVersions(model: string, limit: number, before?: VersionSortKey): Promise<VersionRow[]> {
    const rows: RawVersion[] = await this.dataSource.query(
      `SELECT ${VERSION_COLUMNS} FROM model_versions
        WHERE model = $1
          AND ($2::int IS NULL OR (major, minor, patch, prerelease_sort) < ($2::int, $3::int, $4::int, $5::text COLLATE "C"))
        ORDER BY ${NEWEST_FIRST}
        LIMIT $6`,
      [model, before?.major ?? null, before?.minor ?? null, before?.patch ?? null, before?.prereleaseSort ?? null, limit],
    );
    return rows.map(toVersion);
  }

  async findVersion(model: string, version: string): Promise<VersionRow | undefined> {
    const rows: RawVersion[] = await this.dataSource.query(`SELECT ${VERSION_COLUMNS} FROM model_versions WHERE model = $1 AND version = $2`, [model, version]);
    return rows[0] ? toVersion(rows[0]) : undefined;
  }

  /** Artifacts of several versions of one model: per version, builds in declared order, files in upload order. */
  async artifactsOf(model: string, versions: readonly string[]): Promise<ArtifactRow[]> {
    if (versions.length === 0) return [];
    const rows: RawArtifact[] = await this.dataSource.query(
      `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE model = $1 AND version = ANY($2::text[]) ORDER BY version, variant_rank, position`,
      [model, versions],
    );
    return rows.map(toArtifact);
  }

  async findArtifactByTargetPath(targetPath: string): Promise<ArtifactRow | undefined> {
    const rows: RawArtifact[] = await this.dataSource.query(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE target_path = $1`, [targetPath]);
    return rows[0] ? toArtifact(rows[0]) : undefined;
  }
}
