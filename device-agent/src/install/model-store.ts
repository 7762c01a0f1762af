import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readlink, rename, rm, stat, symlink, unlink, open } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fsyncDir, isErrnoCode } from '../storage/atomic-file.js';

/** A verified file waiting in the download area. `path` is absent for in-memory (simulated) storage. */
export interface StagedFile {
  fileName: string;
  sha256: string;
  length: number;
  path?: string;
}

export interface ModelPointers {
  active: string | null;
  previous: string | null;
}

/**
 * Installed model versions. Activation is an atomic pointer switch, so the on-device application
 * always sees a complete version: either the old one or the new one.
 */
export interface ModelStore {
  pointers(model: string): Promise<ModelPointers>;
  /** Absolute path of a version directory (what the local API hands to applications). */
  versionPath(model: string, version: string): string;
  /** Copies staged files into the version directory. Idempotent. */
  install(model: string, version: string, files: readonly StagedFile[]): Promise<void>;
  /** Points `current` at `version` and `previous` at `previous`. Idempotent. */
  setPointers(model: string, active: string | null, previous: string | null): Promise<void>;
  /** Removes version directories other than the active and previous ones. */
  gc(model: string): Promise<void>;
  remove(model: string): Promise<void>;
  models(): Promise<string[]>;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Verifies a file on disk against an expected length and sha256. Returns a reason on mismatch. */
export async function verifyFile(path: string, length: number, sha256: string): Promise<string | null> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err: unknown) {
    if (isErrnoCode(err, 'ENOENT')) return 'file missing';
    throw err;
  }
  if (size !== length) return `length ${size} != expected ${length}`;
  const actual = await sha256File(path);
  return actual === sha256 ? null : `sha256 ${actual} != expected ${sha256}`;
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Layout: {root}/{model}/versions/{version}/{file}, {root}/{model}/current -> versions/{version},
 * {root}/{model}/previous -> versions/{version} (last-known-good). Links are relative so the data
 * dir can move.
 */
export class FsModelStore implements ModelStore {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  versionPath(model: string, version: string): string {
    return join(this.root, model, 'versions', version);
  }

  private async readPointer(model: string, name: 'current' | 'previous'): Promise<string | null> {
    try {
      const target = await readlink(join(this.root, model, name));
      return target.split('/').pop() ?? null;
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return null;
      throw err;
    }
  }

  async pointers(model: string): Promise<ModelPointers> {
    return { active: await this.readPointer(model, 'current'), previous: await this.readPointer(model, 'previous') };
  }

  async install(model: string, version: string, files: readonly StagedFile[]): Promise<void> {
    const versions = join(this.root, model, 'versions');
    const dest = join(versions, version);
    await mkdir(versions, { recursive: true });
    if (await this.versionDirMatches(dest, files)) return; // a previous run got this far: nothing to redo
    const tmp = join(versions, `.${version}.${randomBytes(4).toString('hex')}.tmp`);
    await mkdir(tmp, { recursive: true });
    try {
      for (const f of files) {
        if (!f.path) throw new Error(`staged file ${f.fileName} has no path`);
        const target = join(tmp, f.fileName);
        // A hard link keeps the staged copy (a crash mid-install can redo this step) at no disk cost.
        await link(f.path, target).catch(async () => copyFile(f.path!, target));
        await fsyncFile(target);
      }
      await fsyncDir(tmp);
      await rm(dest, { recursive: true, force: true });
      await rename(tmp, dest);
      await fsyncDir(versions);
    } catch (err: unknown) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  private async versionDirMatches(dir: string, files: readonly StagedFile[]): Promise<boolean> {
    for (const f of files) {
      if ((await verifyFile(join(dir, f.fileName), f.length, f.sha256)) !== null) return false;
    }
    return files.length > 0;
  }

  private async pointAt(model: string, name: 'current' | 'previous', version: string | null): Promise<void> {
    const dir = join(this.root, model);
    const linkPath = join(dir, name);
    if (version === null) {
      await unlink(linkPath).catch((err: unknown) => {
        if (!isErrnoCode(err, 'ENOENT')) throw err;
      });
    } else {
      // symlink(2) cannot replace an existing link; rename(2) over it is atomic.
      const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
      await symlink(join('versions', version), tmp);
      await rename(tmp, linkPath);
    }
    await fsyncDir(dir);
  }

  async setPointers(model: string, active: string | null, previous: string | null): Promise<void> {
    await mkdir(join(this.root, model), { recursive: true });
    // Previous first: if we crash between the two, `current` is still the old (working) version.
    await this.pointAt(model, 'previous', previous);
    await this.pointAt(model, 'current', active);
  }

  async gc(model: string): Promise<void> {
    const { active, previous } = await this.pointers(model);
    const versions = join(this.root, model, 'versions');
    let names: string[];
    try {
      names = await readdir(versions);
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return;
      throw err;
    }
    for (const name of names) {
      if (name !== active && name !== previous) await rm(join(versions, name), { recursive: true, force: true });
    }
  }

  async remove(model: string): Promise<void> {
    await rm(join(this.root, model), { recursive: true, force: true });
  }

  async models(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((n) => !n.startsWith('.'));
    } catch (err: unknown) {
      if (isErrnoCode(err, 'ENOENT')) return [];
      throw err;
    }
  }
}

/** In-memory model store for simulated devices: same pointer semantics, no bytes. */
export class MemoryModelStore implements ModelStore {
  private readonly state = new Map<string, { versions: Set<string>; active: string | null; previous: string | null }>();

  private get(model: string): { versions: Set<string>; active: string | null; previous: string | null } {
    let s = this.state.get(model);
    if (!s) {
      s = { versions: new Set(), active: null, previous: null };
      this.state.set(model, s);
    }
    return s;
  }

  async pointers(model: string): Promise<ModelPointers> {
    const s = this.state.get(model);
    return { active: s?.active ?? null, previous: s?.previous ?? null };
  }

  versionPath(model: string, version: string): string {
    return `/simulated/${model}/versions/${version}`;
  }

  async install(model: string, version: string): Promise<void> {
    this.get(model).versions.add(version);
  }

  async setPointers(model: string, active: string | null, previous: string | null): Promise<void> {
    const s = this.get(model);
    s.active = active;
    s.previous = previous;
  }

  async gc(model: string): Promise<void> {
    const s = this.get(model);
    for (const v of s.versions) if (v !== s.active && v !== s.previous) s.versions.delete(v);
  }

  async remove(model: string): Promise<void> {
    this.state.delete(model);
  }

  async models(): Promise<string[]> {
    return [...this.state.keys()];
  }
}
