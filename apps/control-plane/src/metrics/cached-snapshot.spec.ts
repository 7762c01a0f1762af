import { describe, expect, it } from '@jest/globals';
import { CachedSnapshot } from './cached-snapshot.js';

describe('CachedSnapshot', () => {
  it('reuses a result within the TTL and shares one in-flight load', async () => {
    let now = 0;
    let loads = 0;
    let release: (() => void) | undefined;
    const cache = new CachedSnapshot(
      () =>
        new Promise<number>((resolve) => {
          loads++;
          release = () => resolve(loads);
        }),
      1000,
      () => now,
    );
    const a = cache.get();
    const b = cache.get();
    release!();
    expect(await Promise.all([a, b])).toEqual([1, 1]);
    expect(loads).toBe(1);
    now = 999;
    expect(await cache.get()).toBe(1);
    now = 1000;
    const c = cache.get();
    release!();
    expect(await c).toBe(2);
  });

  it('keeps the last good value when a reload fails, and retries next time', async () => {
    let fail = false;
    let n = 0;
    const cache = new CachedSnapshot(async () => {
      if (fail) throw new Error('database down');
      return ++n;
    }, 0);
    expect(await cache.get()).toBe(1);
    fail = true;
    await expect(cache.get()).rejects.toThrow('database down');
    expect(cache.last()).toBe(1);
    fail = false;
    expect(await cache.get()).toBe(2);
  });
});
