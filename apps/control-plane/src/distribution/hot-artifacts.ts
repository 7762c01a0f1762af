import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { ARTIFACT_STORE, type ArtifactStore } from '../models/artifact-store/artifact-store.js';

/** Largest artifact kept in memory: heads, adapters, small models. Bigger ones stream from the store. */
export const HOT_ARTIFACT_MAX_BYTES = 1024 * 1024;
/** ARTIFACT_MEMORY_CACHE_MB when a hand-built config leaves it out. */
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * The bytes of small artifacts that devices are downloading now, kept in memory (least recently
 * used out first, ARTIFACT_MEMORY_CACHE_MB in all). A rollout wave makes thousands of devices ask
 * for the same few files within seconds; from the store each download cost an open, a stat, a read
 * and a close (a fifth of a replica's CPU in a 10,000-device rollout of a 4 KB model). Artifacts are
 * immutable under their storage key, so an entry never goes stale. Bytes are kept only if they hash
 * to what was uploaded: a file damaged on disk is streamed as it is, for the devices to refuse, and
 * never multiplied from memory.
 */
@Injectable()
export class HotArtifacts {
  private readonly entries = new Map<string, Buffer>();
  private readonly loading = new Map<string, Promise<Buffer | undefined>>();
  private readonly maxBytes: number;
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
  ) {
    this.maxBytes = config.artifactMemoryCacheBytes ?? DEFAULT_CACHE_BYTES;
  }

  /** Bytes held now. */
  get size(): number {
    return this.bytes;
  }

  /**
   * The whole artifact from memory, read from the store on first use (concurrent first uses share
   * one read). Undefined when it is too big to keep, the cache is off, or the store has no such
   * file (or one of another size or hash): the caller streams it, or reports it missing.
   */
  async get(key: string, size: number, sha256: string): Promise<Buffer | undefined> {
    if (size > HOT_ARTIFACT_MAX_BYTES || size > this.maxBytes) return undefined;
    const hit = this.entries.get(key);
    if (hit) {
      // Map order is insertion order: re-inserting makes it the most recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
      this.hits++;
      return hit;
    }
    this.misses++;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(key, size, sha256).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async load(key: string, size: number, sha256: string): Promise<Buffer | undefined> {
    let bytes: Buffer;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.store.open(key)) chunks.push(chunk as Buffer);
      bytes = Buffer.concat(chunks);
    } catch {
      return undefined;
    }
    if (bytes.length !== size || createHash('sha256').update(bytes).digest('hex') !== sha256) return undefined;
    if (!this.entries.has(key)) {
      this.entries.set(key, bytes);
      this.bytes += bytes.length;
      for (const [oldest, old] of this.entries) {
        if (this.bytes <= this.maxBytes) break;
        this.entries.delete(oldest);
        this.bytes -= old.length;
      }
    }
    return bytes;
  }
}
