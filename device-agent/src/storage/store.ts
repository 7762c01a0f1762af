import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrnoCode, writeFileAtomic } from './atomic-file.js';

/**
 * Small durable key -> JSON document store for the agent's own state (journal, outboxes,
 * sequence counters). Keys are relative paths like `journal/resnet`. The file-backed store writes
 * atomically; the in-memory one backs simulated devices, which need the same code without disk.
 */
export interface StateStore {
  read<T>(key: string): Promise<T | undefined>;
  write(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

export class FileStateStore implements StateStore {
  constructor(private readonly root: string) {}

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '')) throw new Error(`invalid state key ${key}`);
    return join(this.root, `${key}.json`);
  }

  async read<T>(key: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.path(key), 'utf8')) as T;
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async write(key: string, value: unknown): Promise<void> {
    await writeFileAtomic(this.path(key), JSON.stringify(value), 0o600);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async list(prefix: string): Promise<string[]> {
    try {
      const names = await readdir(join(this.root, prefix));
      return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => `${prefix}/${n.slice(0, -5)}`);
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return [];
      throw err;
    }
  }
}

export class MemoryStateStore implements StateStore {
  private readonly data = new Map<string, string>();

  async read<T>(key: string): Promise<T | undefined> {
    const raw = this.data.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  async write(key: string, value: unknown): Promise<void> {
    // Serialise so callers cannot mutate stored state by reference, exactly like the file store.
    this.data.set(key, JSON.stringify(value));
  }

  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }

  async list(prefix: string): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(`${prefix}/`) && !k.slice(prefix.length + 1).includes('/'));
  }
}
