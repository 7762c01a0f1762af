import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type ArtifactRef, type Compatibility, DEFAULT_VARIANT, modelTargetPath } from '@fleetline/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { TufRepositoryService } from '../distribution/tuf-repository.service.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { decodeCursor, encodeCursor, type Page } from '../infra/http/keyset-page.js';
import { ARTIFACT_STORE, type ArtifactStore } from './artifact-store/artifact-store.js';
import { ModelErrorCode, ModelException } from './models.exception.js';
import { type ArtifactRow, type ModelSummary, ModelsRepository, type VersionRow, type VersionStatus } from './models.repository.js';
import { parseModelVersion, type VersionSortKey } from './semver-sort-key.js';
import { missingVariantFiles, parseUploadMetadata, planFile, type UploadMetadata, type VersionMetadata } from './version-metadata.js';
import { parseVersionUpload } from './version-upload.parser.js';

export const DEFAULT_PAGE_SIZE = 50;

export interface ArtifactView {
  fileName: string;
  targetPath: string;
  sha256: string;
  size: number;
  runtime: string;
  framework?: string;
  compatibility: Compatibility;
  /** The build the file belongs to (`default` when the upload declared none). */
  variant: string;
}

/** A model version as the admin API shows it. */
export interface VersionView {
  model: string;
  version: string;
  createdAt: Date;
  /** `awaiting-signature` (TUF_KEYS=offline): not distributable until signed targets list it. */
  status: VersionStatus;
  metadata: VersionMetadata;
  referenceDistribution: Record<string, number> | null;
  artifacts: ArtifactView[];
}

/** A model version as other features use it (rollouts, telemetry): artifacts in wire form. */
export interface ModelVersionDetails {
  model: string;
  version: string;
  createdAt: Date;
  status: VersionStatus;
  metadata: VersionMetadata;
  referenceDistribution?: Record<string, number>;
  artifacts: ArtifactRef[];
}

function toArtifactRef(a: ArtifactRow): ArtifactRef {
  return {
    targetPath: a.targetPath,
    sha256: a.sha256,
    length: a.size,
    runtime: a.runtime,
    ...(a.framework ? { framework: a.framework } : {}),
    compatibility: a.compatibility,
    // Only named builds go on the wire: a version without variants looks exactly as before.
    ...(a.variant ? { variant: a.variant } : {}),
  };
}

function toArtifactView(a: ArtifactRow): ArtifactView {
  return {
    fileName: a.fileName,
    targetPath: a.targetPath,
    sha256: a.sha256,
    size: a.size,
    runtime: a.runtime,
    ...(a.framework ? { framework: a.framework } : {}),
    compatibility: a.compatibility,
    variant: a.variant ?? DEFAULT_VARIANT,
  };
}

/**
 * TUF target path of an artifact; also the suffix of its download URL. The rule lives in the
 * protocol (`modelTargetPath`): devices check every target they are sent against it.
 */
export function targetPathOf(model: string, version: string, fileName: string): string {
  return modelTargetPath(model, version, fileName);
}

/** Published artifacts kept in memory by target path (oldest dropped first). */
const ARTIFACT_CACHE_ENTRIES = 1_000;

@Injectable()
export class ModelsService {
  private readonly artifactCache = new Map<string, ArtifactRow>();

  constructor(
    private readonly repo: ModelsRepository,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
    private readonly tuf: TufRepositoryService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async createModel(name: string, description?: string): Promise<ModelSummary> {
    if (!(await this.repo.createModel(name, description ?? null))) {
      throw new ModelException(ModelErrorCode.DuplicateModel, `model "${name}" already exists`);
    }
    return this.getModel(name);
  }

  async getModel(name: string): Promise<ModelSummary> {
    const [model] = await this.repo.listModels(1, undefined, name);
    if (!model) throw new ModelException(ModelErrorCode.ModelNotFound, `model "${name}" not found`);
    return model;
  }

  async listModels(limit = DEFAULT_PAGE_SIZE, after?: string): Promise<Page<ModelSummary>> {
    let afterName: string | undefined;
    if (after !== undefined) {
      const decoded = decodeCursor(after, 1);
      if (!decoded || typeof decoded[0] !== 'string') throw new ModelException(ModelErrorCode.InvalidCursor, 'invalid cursor');
      afterName = decoded[0];
    }
    const items = await this.repo.listModels(limit + 1, afterName);
    const page = items.slice(0, limit);
    return { items: page, next: items.length > limit ? encodeCursor([page[page.length - 1]!.name]) : null };
  }

  /**
   * Streams a multipart version upload into the artifact store, then records the version and
   * publishes its artifacts as TUF targets in one transaction: a version is visible only once
   * devices can verify it, and nothing (rows or files) is left behind when any step fails.
   * With TUF_KEYS=offline this server cannot sign targets: the version is stored as
   * `awaiting-signature` and becomes distributable when the operator signs (`fleetctl targets sign`).
   */
  async uploadVersion(model: string, req: IncomingMessage): Promise<VersionView> {
    if (!(await this.repo.modelExists(model))) {
      req.resume();
      throw new ModelException(ModelErrorCode.ModelNotFound, `model "${model}" not found`);
    }
    let version = '';
    let sortKey: VersionSortKey | undefined;
    let metadata: UploadMetadata = {};
    const { files } = await parseVersionUpload(req, {
      store: this.store,
      maxBytes: this.config.maxArtifactBytes,
      onFields: async (fields) => {
        const parsed = parseModelVersion(fields.version);
        if (!parsed.ok) throw new ModelException(ModelErrorCode.InvalidVersion, parsed.reason);
        if (fields.metadata !== undefined) {
          const meta = parseUploadMetadata(fields.metadata);
          if (!meta.ok) throw new ModelException(ModelErrorCode.InvalidMetadata, meta.reason, meta.issues ? { issues: meta.issues } : undefined);
          metadata = meta.metadata;
        }
        version = fields.version;
        sortKey = parsed.key;
        if (await this.repo.versionExists(model, version)) {
          throw new ModelException(ModelErrorCode.DuplicateVersion, `model "${model}" already has version ${version}`);
        }
      },
      prepareFile: (fileName) => {
        const plan = planFile(metadata, fileName);
        if (!plan.ok) throw new ModelException(ModelErrorCode.InvalidMetadata, plan.reason);
      },
    });
    const missing = missingVariantFiles(
      metadata,
      files.map((f) => f.fileName),
    );
    if (missing.length > 0) {
      await Promise.all(files.map((f) => this.store.delete(f.key)));
      throw new ModelException(ModelErrorCode.InvalidMetadata, `metadata.variants lists files that were not uploaded: ${missing.join(', ')}`);
    }
    const key = sortKey as VersionSortKey;
    const artifacts: ArtifactRow[] = files.map((f, position) => {
      const plan = planFile(metadata, f.fileName);
      if (!plan.ok) throw new ModelException(ModelErrorCode.InvalidMetadata, plan.reason); // checked per part already
      return {
        id: randomUUID(),
        model,
        version,
        fileName: f.fileName,
        position,
        sha256: f.sha256,
        size: f.size,
        ...plan.plan,
        storageKey: f.key,
        targetPath: targetPathOf(model, version, f.fileName),
      };
    });
    const { referenceDistribution, ...rest } = metadata;
    const stored: VersionMetadata = rest;
    const offline = this.config.tufKeys === 'offline';
    try {
      await this.repo.transaction(async (manager) => {
        const inserted = await this.repo.insertVersion(manager, {
          model,
          version,
          sortKey: key,
          metadata: stored,
          referenceDistribution: referenceDistribution ?? null,
          status: offline ? 'awaiting-signature' : 'published',
        });
        if (!inserted) throw new ModelException(ModelErrorCode.DuplicateVersion, `model "${model}" already has version ${version}`);
        await this.repo.insertArtifacts(manager, artifacts);
        if (offline) return;
        await this.tuf.publishTargets(
          manager,
          artifacts.map((a) => ({
            path: a.targetPath,
            length: a.size,
            sha256: a.sha256,
            custom: { model, version, runtime: a.runtime, ...(a.framework ? { framework: a.framework } : {}), ...(a.variant ? { variant: a.variant } : {}) },
          })),
        );
      });
    } catch (err) {
      await Promise.all(files.map((f) => this.store.delete(f.key)));
      throw err;
    }
    this.tuf.forgetCached();
    return this.describeVersion(model, version);
  }

  async listVersions(model: string, limit = DEFAULT_PAGE_SIZE, after?: string): Promise<Page<VersionView>> {
    let before: VersionSortKey | undefined;
    if (after !== undefined) {
      const decoded = decodeCursor(after, 1);
      const parsed = typeof decoded?.[0] === 'string' ? parseModelVersion(decoded[0]) : undefined;
      if (!parsed?.ok) throw new ModelException(ModelErrorCode.InvalidCursor, 'invalid cursor');
      before = parsed.key;
    }
    const rows = await this.repo.listVersions(model, limit + 1, before);
    if (rows.length === 0 && !(await this.repo.modelExists(model))) {
      throw new ModelException(ModelErrorCode.ModelNotFound, `model "${model}" not found`);
    }
    const page = rows.slice(0, limit);
    const artifacts = await this.repo.artifactsOf(
      model,
      page.map((v) => v.version),
    );
    return {
      items: page.map((v) =>
        this.view(
          v,
          artifacts.filter((a) => a.version === v.version),
        ),
      ),
      next: rows.length > limit ? encodeCursor([page[page.length - 1]!.version]) : null,
    };
  }

  async describeVersion(model: string, version: string): Promise<VersionView> {
    const row = await this.findVersion(model, version);
    return this.view(row, await this.repo.artifactsOf(model, [version]));
  }

  /** A version with its artifacts as ArtifactRefs; throws ModelException (404) when unknown. */
  async getVersion(model: string, version: string): Promise<ModelVersionDetails> {
    const row = await this.findVersion(model, version);
    const artifacts = await this.repo.artifactsOf(model, [version]);
    return {
      model: row.model,
      version: row.version,
      createdAt: row.createdAt,
      status: row.status,
      metadata: row.metadata,
      ...(row.referenceDistribution ? { referenceDistribution: row.referenceDistribution } : {}),
      artifacts: artifacts.map(toArtifactRef),
    };
  }

  /**
   * The ArtifactRefs a DesiredModel carries for this version. Refused (409) for a version no
   * signed targets list yet: every device would fail to verify it.
   */
  async artifactRefs(model: string, version: string): Promise<ArtifactRef[]> {
    const details = await this.getVersion(model, version);
    if (details.status === 'awaiting-signature') {
      throw new ModelException(
        ModelErrorCode.VersionAwaitingSignature,
        `model "${model}" version ${version} is awaiting a targets signature: sign it with \`fleetctl targets sign\` first`,
      );
    }
    return details.artifacts;
  }

  /** The artifact published under a TUF target path, if any. */
  /**
   * Artifacts are never changed or deleted once published, so found ones are cached (misses are
   * not: an upload may publish the path a moment later). Every device of a rollout downloads
   * the same few targets.
   */
  async findArtifactByTargetPath(targetPath: string): Promise<ArtifactRow | undefined> {
    const cached = this.artifactCache.get(targetPath);
    if (cached) return cached;
    const found = await this.repo.findArtifactByTargetPath(targetPath);
    if (found) {
      if (this.artifactCache.size >= ARTIFACT_CACHE_ENTRIES) this.artifactCache.delete(this.artifactCache.keys().next().value!);
      this.artifactCache.set(targetPath, found);
    }
    return found;
  }

  private async findVersion(model: string, version: string): Promise<VersionRow> {
    const row = await this.repo.findVersion(model, version);
    if (row) return row;
    if (!(await this.repo.modelExists(model))) throw new ModelException(ModelErrorCode.ModelNotFound, `model "${model}" not found`);
    throw new ModelException(ModelErrorCode.VersionNotFound, `model "${model}" has no version ${version}`);
  }

  private view(v: VersionRow, artifacts: ArtifactRow[]): VersionView {
    return {
      model: v.model,
      version: v.version,
      createdAt: v.createdAt,
      status: v.status,
      metadata: v.metadata,
      referenceDistribution: v.referenceDistribution,
      artifacts: artifacts.map(toArtifactView),
    };
  }
}
