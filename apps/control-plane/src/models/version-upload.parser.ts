import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { ArtifactTooLargeError, type ArtifactStore, type StoredArtifact } from './artifact-store/artifact-store.js';
import { ModelErrorCode, ModelException } from './models.exception.js';
import { FILE_NAME_PATTERN } from './version-metadata.js';

/** Most artifacts one version may carry (DesiredModel.artifacts allows 16). */
export const MAX_FILES_PER_VERSION = 16;

export interface UploadFields {
  version: string;
  metadata?: string;
}

export interface UploadedFile extends StoredArtifact {
  fileName: string;
}

export interface ParseUploadOptions {
  store: ArtifactStore;
  maxBytes: number;
  /**
   * Called once, when the first file part starts and before any byte of it is stored: validates
   * the fields and checks the database (unknown model, duplicate version) so a refused upload
   * never writes hundreds of megabytes first.
   */
  onFields: (fields: UploadFields) => Promise<void>;
  /** Validates one file part by name before it is stored (e.g. the runtime it needs). */
  prepareFile: (fileName: string) => void;
}

const FIELDS_FIRST = 'the "version" (and optional "metadata") fields must come before the "file" parts in the multipart body';

/**
 * Streams a `multipart/form-data` version upload: fields `version`, optional `metadata`, then
 * one or more `file` parts, each piped into the ArtifactStore as it arrives (never buffered).
 * On any failure every file already stored is deleted and the rest of the body is drained so
 * the client reads the error answer instead of a reset connection.
 */
export async function parseVersionUpload(req: IncomingMessage, options: ParseUploadOptions): Promise<{ fields: UploadFields; files: UploadedFile[] }> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { files: MAX_FILES_PER_VERSION, fields: 8, parts: MAX_FILES_PER_VERSION + 8, fieldSize: 1024 * 1024 } });
  } catch (err) {
    throw new ModelException(ModelErrorCode.InvalidUpload, `expected a multipart/form-data body: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fields: Partial<UploadFields> = {};
  const files: UploadedFile[] = [];
  let failure: unknown;
  let filesStarted = false;
  let fieldsChecked = false;
  let chain: Promise<void> = Promise.resolve();
  /** The file part being stored right now, so a cut connection can abort it. */
  let current: Readable | undefined;
  const fail = (err: unknown): void => {
    failure ??= err;
  };

  let onClose: () => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    // A client that goes away mid-body: busboy would wait for bytes that never come.
    onClose = () => {
      if (req.complete) return;
      const err = new ModelException(ModelErrorCode.InvalidUpload, 'the connection closed before the upload was complete');
      fail(err);
      current?.destroy(err);
      reject(err);
    };
    req.on('close', onClose);
    parser.on('field', (name, value, info) => {
      if (failure) return;
      if (filesStarted) return fail(new ModelException(ModelErrorCode.InvalidUpload, `field "${name}" arrived after a file: ${FIELDS_FIRST}`));
      if (info.valueTruncated) return fail(new ModelException(ModelErrorCode.InvalidUpload, `field "${name}" is larger than 1 MiB`));
      if (name !== 'version' && name !== 'metadata')
        return fail(new ModelException(ModelErrorCode.InvalidUpload, `unknown field "${name}" (expected version, metadata, file)`));
      if (fields[name] !== undefined) return fail(new ModelException(ModelErrorCode.InvalidUpload, `field "${name}" appears twice`));
      fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      // busboy destroys a part's stream with the body's error (a form cut short): a part still
      // queued behind an earlier one has no reader yet, and an 'error' without a listener would
      // crash the process. The parser's own 'error' answers the request. Found by fuzzing.
      stream.on('error', fail);
      const first = !filesStarted;
      filesStarted = true;
      chain = chain.then(async () => {
        try {
          if (failure) return;
          if (name !== 'file') throw new ModelException(ModelErrorCode.InvalidUpload, `file parts must be named "file" (got "${name}")`);
          if (first) {
            if (fields.version === undefined) throw new ModelException(ModelErrorCode.InvalidUpload, `missing "version" field: ${FIELDS_FIRST}`);
            fieldsChecked = true;
            await options.onFields({ version: fields.version, metadata: fields.metadata });
          }
          const fileName = info.filename;
          if (!fileName || !FILE_NAME_PATTERN.test(fileName)) {
            throw new ModelException(
              ModelErrorCode.InvalidUpload,
              `file name "${fileName ?? ''}" must be 1-128 chars of [A-Za-z0-9._-], starting alphanumeric`,
            );
          }
          if (files.some((f) => f.fileName === fileName)) throw new ModelException(ModelErrorCode.InvalidUpload, `file "${fileName}" appears twice`);
          options.prepareFile(fileName);
          current = stream;
          const stored = await options.store.put(stream, { maxBytes: options.maxBytes });
          files.push({ ...stored, fileName });
          if (stored.size === 0) throw new ModelException(ModelErrorCode.InvalidUpload, `file "${fileName}" is empty`);
        } catch (err) {
          fail(
            err instanceof ArtifactTooLargeError
              ? new ModelException(ModelErrorCode.ArtifactTooLarge, `artifact is larger than the limit of ${options.maxBytes} bytes (MAX_ARTIFACT_BYTES)`)
              : err,
          );
        } finally {
          current = undefined;
          // A refused or failed part is still read to its end so busboy can move on.
          stream.resume();
        }
      });
    });
    parser.on('filesLimit', () => fail(new ModelException(ModelErrorCode.InvalidUpload, `at most ${MAX_FILES_PER_VERSION} files per version`)));
    parser.on('fieldsLimit', () => fail(new ModelException(ModelErrorCode.InvalidUpload, 'too many fields')));
    parser.on('partsLimit', () => fail(new ModelException(ModelErrorCode.InvalidUpload, 'too many parts')));
    parser.on('error', (err: unknown) => {
      const e = new ModelException(ModelErrorCode.InvalidUpload, `malformed multipart body: ${err instanceof Error ? err.message : String(err)}`);
      // busboy may still announce a part after its error (a malformed part header), whose stream
      // never ends: without the failure recorded, storing it would wait for ever and the request
      // would never be answered. Found by fuzzing.
      fail(e);
      current?.destroy(e);
      reject(e);
    });
    parser.on('close', () => resolve());
  });

  req.pipe(parser);
  try {
    await done;
    await chain;
    if (failure) throw failure;
    if (fields.version === undefined) throw new ModelException(ModelErrorCode.InvalidUpload, 'missing "version" field');
    if (!fieldsChecked) await options.onFields({ version: fields.version, metadata: fields.metadata });
    if (files.length === 0) throw new ModelException(ModelErrorCode.InvalidUpload, 'at least one "file" part is required');
    return { fields: { version: fields.version, metadata: fields.metadata }, files };
  } catch (err) {
    req.unpipe(parser);
    req.resume();
    await chain.catch(() => undefined);
    await Promise.all(files.map((f) => options.store.delete(f.key)));
    throw err;
  } finally {
    req.off('close', onClose);
  }
}
