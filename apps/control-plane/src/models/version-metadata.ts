import { ARTIFACT_FILE_NAME_PATTERN, type Compatibility, compatibilitySchema, variantNameSchema } from '@fleetline/protocol';
import { z } from 'zod';

const runtimeName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'runtime: 1-64 chars of [a-z0-9._-]');

/** One build of a version: which of the uploaded files make it up, and what it needs. */
const variantSchema = z.strictObject({
  name: variantNameSchema,
  /** File names of the upload that belong to this build; the first is the one the runtime loads. */
  files: z.array(z.string().min(1).max(128)).min(1).max(16),
  /** Overrides the version-wide runtime, framework and compatibility for this build. */
  runtime: runtimeName.optional(),
  framework: z.string().min(1).max(64).optional(),
  compatibility: z.strictObject(compatibilitySchema.shape).optional(),
});
export type VariantDeclaration = z.infer<typeof variantSchema>;

/** The optional `metadata` JSON field of a version upload. */
export const uploadMetadataSchema = z.strictObject({
  /** Runtime that loads the artifacts; defaults to "onnx" when every file is a .onnx file. */
  runtime: runtimeName.optional(),
  framework: z.string().min(1).max(64).optional(),
  compatibility: z.strictObject(compatibilitySchema.shape).optional(),
  /** Label -> count of the model's predictions on its validation set: the baseline for drift. */
  referenceDistribution: z
    .record(z.string().min(1).max(128), z.number().nonnegative().finite())
    .refine((d) => Object.keys(d).length >= 1 && Object.keys(d).length <= 1000, 'referenceDistribution: 1-1000 labels')
    .optional(),
  notes: z.string().max(10_000).optional(),
  /**
   * Builds of the version, most preferred first: each device gets the first one that fits it. Every
   * uploaded file belongs to exactly one build. Absent: all files form one build, `default`.
   */
  variants: z
    .array(variantSchema)
    .min(1)
    .max(16)
    .refine((v) => new Set(v.map((b) => b.name)).size === v.length, 'variants: names must be unique')
    .refine((v) => new Set(v.flatMap((b) => b.files)).size === v.flatMap((b) => b.files).length, 'variants: a file belongs to one build only')
    .optional(),
});
export type UploadMetadata = z.infer<typeof uploadMetadataSchema>;

/** What model_versions.metadata stores (referenceDistribution has its own column). */
export interface VersionMetadata {
  runtime?: string;
  framework?: string;
  compatibility?: z.infer<typeof compatibilitySchema>;
  notes?: string;
  variants?: VariantDeclaration[];
}

export type ParsedUploadMetadata = { ok: true; metadata: UploadMetadata } | { ok: false; reason: string; issues?: string[] };

export function parseUploadMetadata(text: string): ParsedUploadMetadata {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'metadata must be a JSON object' };
  }
  const parsed = uploadMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'metadata'}: ${i.message}`);
    return { ok: false, reason: `invalid metadata: ${issues.join('; ')}`, issues };
  }
  return { ok: true, metadata: parsed.data };
}

/**
 * Artifact file names become the last segment of a TUF target path and of a download URL; the
 * protocol's rule, which devices check target paths against.
 */
export const FILE_NAME_PATTERN = ARTIFACT_FILE_NAME_PATTERN;

/** How one uploaded file is published: its build, that build's rank, runtime, framework and constraints. */
export interface FilePlan {
  variant: string | null;
  variantRank: number;
  runtime: string;
  framework: string | null;
  compatibility: Compatibility;
}

/**
 * The plan of one uploaded file, or why it cannot be published: a file no declared build lists,
 * or one without a runtime (the build's, the version's, else "onnx" for a .onnx file).
 */
export function planFile(metadata: UploadMetadata, fileName: string): { ok: true; plan: FilePlan } | { ok: false; reason: string } {
  const rank = metadata.variants?.findIndex((v) => v.files.includes(fileName)) ?? -1;
  const build = rank >= 0 ? metadata.variants![rank] : undefined;
  if (metadata.variants && !build) {
    return { ok: false, reason: `file "${fileName}" is in no build of metadata.variants (${metadata.variants.map((v) => v.name).join(', ')})` };
  }
  const runtime = build?.runtime ?? metadata.runtime ?? (fileName.toLowerCase().endsWith('.onnx') ? 'onnx' : undefined);
  if (!runtime) return { ok: false, reason: `metadata.runtime is required for "${fileName}" (only .onnx files default to "onnx")` };
  return {
    ok: true,
    plan: {
      variant: build?.name ?? null,
      variantRank: Math.max(rank, 0),
      runtime,
      framework: build?.framework ?? metadata.framework ?? null,
      compatibility: build?.compatibility ?? metadata.compatibility ?? {},
    },
  };
}

/** Files a declared build lists that the upload did not carry (a build must not be empty or partial). */
export function missingVariantFiles(metadata: UploadMetadata, uploaded: readonly string[]): string[] {
  const have = new Set(uploaded);
  return (metadata.variants ?? []).flatMap((v) => v.files.filter((f) => !have.has(f)).map((f) => `${v.name}/${f}`));
}
