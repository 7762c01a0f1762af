import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { AppConfig } from '../infra/config/app-config.js';
import { LocalDirectoryArtifactStore } from '../models/artifact-store/local-directory-artifact-store.js';
import { HOT_ARTIFACT_MAX_BYTES, HotArtifacts } from './hot-artifacts.js';

describe('HotArtifacts (over a real artifact directory)', () => {
  let dir: string;
  let store: LocalDirectoryArtifactStore;
  let opens: number;
  const cache = (bytes: number): HotArtifacts => new HotArtifacts({ artifactMemoryCacheBytes: bytes } as unknown as AppConfig, store);
  const put = (bytes: Buffer) => store.put(Readable.from([bytes]), { maxBytes: 1 << 30 });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetline-hot-'));
    store = new LocalDirectoryArtifactStore(dir);
    opens = 0;
    const open = store.open.bind(store);
    store.open = (key, range) => {
      opens++;
      return open(key, range);
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a small artifact once, then serves it from memory (even if the file went away)', async () => {
    const bytes = randomBytes(4096);
    const a = await put(bytes);
    const hot = cache(1 << 20);
    const [first, second] = await Promise.all([hot.get(a.key, a.size, a.sha256), hot.get(a.key, a.size, a.sha256)]);
    expect(first?.equals(bytes)).toBe(true);
    expect(second).toBe(first);
    expect(opens).toBe(1);
    await store.delete(a.key);
    expect((await hot.get(a.key, a.size, a.sha256))?.equals(bytes)).toBe(true);
    expect(hot.hits).toBe(1);
    expect(hot.size).toBe(4096);
  });

  it('leaves big artifacts, missing files and files of another size to the caller', async () => {
    const big = await put(randomBytes(HOT_ARTIFACT_MAX_BYTES + 1));
    const hot = cache(64 << 20);
    expect(await hot.get(big.key, big.size, big.sha256)).toBeUndefined();
    expect(await hot.get('00missing', 10, '0'.repeat(64))).toBeUndefined();
    const small = await put(randomBytes(100));
    expect(await hot.get(small.key, 99, small.sha256)).toBeUndefined();
    expect(await cache(0).get(small.key, small.size, small.sha256)).toBeUndefined();
    expect(hot.size).toBe(0);
  });

  it('does not keep bytes damaged on disk since the upload: the caller streams them, for the device to refuse', async () => {
    const bytes = randomBytes(1000);
    const a = await put(bytes);
    const handle = await open(join(dir, a.key), 'r+');
    await handle.write(Buffer.from([bytes[10]! ^ 0xff]), 0, 1, 10);
    await handle.close();
    const hot = cache(1 << 20);
    expect(await hot.get(a.key, a.size, a.sha256)).toBeUndefined();
    expect(hot.size).toBe(0);
  });

  it('keeps at most its budget, dropping the least recently used first', async () => {
    const [a, b, c] = await Promise.all([put(randomBytes(400)), put(randomBytes(400)), put(randomBytes(400))]);
    const hot = cache(1000);
    await hot.get(a!.key, 400, a!.sha256);
    await hot.get(b!.key, 400, b!.sha256);
    await hot.get(a!.key, 400, a!.sha256); // a is now the most recently used
    await hot.get(c!.key, 400, c!.sha256); // over budget: b goes
    expect(hot.size).toBe(800);
    const before = opens;
    await hot.get(a!.key, 400, a!.sha256);
    await hot.get(c!.key, 400, c!.sha256);
    expect(opens).toBe(before);
    await hot.get(b!.key, 400, b!.sha256);
    expect(opens).toBe(before + 1);
  });
});
