import { describe, expect, it } from '@jest/globals';
import { LiveDevices } from './live-devices.js';

describe('LiveDevices', () => {
  it('looks up every id asked for in one turn with one query, and caches live ones until the TTL', async () => {
    const queries: string[][] = [];
    let now = 0;
    const live = new LiveDevices({ liveIds: async (ids) => (queries.push(ids), new Set(ids.filter((id) => id !== 'gone'))) }, 1000, () => now);
    expect(await Promise.all([live.isLive('a'), live.isLive('b'), live.isLive('a'), live.isLive('gone')])).toEqual([true, true, true, false]);
    expect(queries).toEqual([['a', 'b', 'gone']]);
    expect(await live.isLive('a')).toBe(true);
    expect(await live.isLive('gone')).toBe(false); // not cached: a device enrolled meanwhile is seen at once
    expect(queries).toHaveLength(2);
    now = 1001;
    expect(await live.isLive('a')).toBe(true);
    expect(queries).toHaveLength(3);
  });

  it('rejects the waiting checks when the lookup fails', async () => {
    const live = new LiveDevices({ liveIds: () => Promise.reject(new Error('db down')) });
    await expect(live.isLive('a')).rejects.toThrow('db down');
  });
});
