import type { Readable } from 'node:stream';

/** Injection token of the ArtifactStore implementation. */
export const ARTIFACT_STORE = Symbol('ARTIFACT_STORE');

export interface StoredArtifact {
  /** Opaque key to open/stat/delete the artifact later. */
  key: string;
  /** Lower-case hex sha256 of the bytes, computed while they streamed in. */
  sha256: string;
  size: number;
}

/** Inclusive byte range, as in an HTTP Content-Range (RFC 9110 §14.4). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface PutOptions {
  /** Refuse (ArtifactTooLargeError) as soon as more than this many bytes arrived. */
  maxBytes: number;
}

/** The stream grew past PutOptions.maxBytes; nothing was kept. */
export class ArtifactTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`artifact is larger than ${maxBytes} bytes`);
    this.name = 'ArtifactTooLargeError';
  }
}

/**
 * Where artifact bytes live. The database keeps only the key, size and digest; uploads and
 * downloads stream through this interface and are never held in memory.
 */
export interface ArtifactStore {
  /** Streams `source` into the store. On any failure nothing is left behind. */
  put(source: Readable, options: PutOptions): Promise<StoredArtifact>;
  /** A read stream of the whole artifact or of one inclusive byte range. */
  open(key: string, range?: ByteRange): Promise<Readable>;
  /** Size in bytes, or undefined when the key does not exist. */
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Removes the artifact; a missing key is not an error. */
  delete(key: string): Promise<void>;
}
