import { ARTIFACT_FILE_NAME_PATTERN, compatibilitySchema } from '@fleetline/protocol';
import { z } from 'zod';

const runtimeName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'runtime: 1-64 chars of [a-z0-9._-]');

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
});
export type UploadMetadata = z.infer<typeof uploadMetadataSchema>;

/** What model_versions.metadata stores (referenceDistribution has its own column). */
export interface VersionMetadata {
  runtime?: string;
  framework?: string;
  compatibility?: z.infer<typeof compatibilitySchema>;
  notes?: string;
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

/** Runtime of one uploaded file: the explicit one, else "onnx" for a .onnx file, else none (required). */
export function resolveRuntime(metadata: UploadMetadata, fileName: string): string | undefined {
  if (metadata.runtime) return metadata.runtime;
  return fileName.toLowerCase().endsWith('.onnx') ? 'onnx' : undefined;
}
