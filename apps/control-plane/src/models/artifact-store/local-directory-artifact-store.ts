import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArtifactTooLargeError, type ArtifactStore, type ByteRange, type PutOptions, type StoredArtifact } from './artifact-store.js';

const KEY_PATTERN = /^[0-9a-f]{2}\/[0-9a-f-]{36}$/;

/**
 * Artifacts as files under one directory (`{dataDir}/artifacts` by default). Several replicas
 * must share the directory (a shared volume) or use another ArtifactStore implementation.
 *
 * Writes go to a temporary file in the same directory, are fsynced and then renamed, so a
 * crash never leaves a half-written artifact under a real key (rename is atomic on POSIX).
 */
export class LocalDirectoryArtifactStore implements ArtifactStore {
  private readonly tmpDir: string;

  constructor(private readonly root: string) {
    this.tmpDir = join(root, '.tmp');
  }

  async put(source: Readable, options: PutOptions): Promise<StoredArtifact> {
    await mkdir(this.tmpDir, { recursive: true });
    const id = randomUUID();
    const key = `${id.slice(0, 2)}/${id}`;
    const tmpPath = join(this.tmpDir, `${id}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > options.maxBytes) {
          callback(new ArtifactTooLargeError(options.maxBytes));
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmpPath, { flags: 'wx', mode: 0o640 }));
      const handle = await open(tmpPath, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      const finalPath = this.path(key);
      await mkdir(join(this.root, key.slice(0, 2)), { recursive: true });
      await rename(tmpPath, finalPath);
    } catch (err) {
      await rm(tmpPath, { force: true });
      throw err;
    }
    return { key, sha256: hash.digest('hex'), size };
  }

  async open(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.path(key);
    // Open first so a missing file rejects here rather than as a stream error mid-response.
    const handle = await open(path, 'r');
    return createReadStream('', { fd: handle, start: range?.start, end: range?.end });
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.path(key));
      return { size: info.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  private path(key: string): string {
    // Keys only ever come from put(); refuse anything else so a key can never escape the root.
    if (!KEY_PATTERN.test(key)) throw new Error(`invalid artifact key: ${key}`);
    return join(this.root, key);
  }
}
