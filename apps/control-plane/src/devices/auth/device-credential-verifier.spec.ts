import { describe, expect, it } from '@jest/globals';
import { hashSecret } from '../../access/secret.js';
import type { DeviceCredentialsRepository } from './device-credentials.repository.js';
import { DeviceCredentialVerifier } from './device-credential-verifier.service.js';

/** In-memory stand-in for the credentials table that records each lookup. */
function fakeRepository(devices: Record<string, string>): { repo: DeviceCredentialsRepository; lookups: string[][]; devices: Record<string, string> } {
  const lookups: string[][] = [];
  const repo = {
    credentialHashes: async (ids: string[]) => {
      lookups.push(ids);
      return new Map(ids.filter((id) => devices[id] !== undefined).map((id) => [id, hashSecret(devices[id]!)]));
    },
  } as unknown as DeviceCredentialsRepository;
  return { repo, lookups, devices };
}

describe('DeviceCredentialVerifier', () => {
  it('coalesces a reconnect storm into batched lookups and caches positive answers', async () => {
    const devices = Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`dev-${i}`, `secret-${i}`]));
    const { repo, lookups } = fakeRepository(devices);
    const verifier = new DeviceCredentialVerifier(repo);
    const results = await Promise.all(Object.entries(devices).map(([id, secret]) => verifier.verify(id, secret)));
    expect(results.every(Boolean)).toBe(true);
    expect(lookups.map((l) => l.length)).toEqual([1000, 1000, 500]);

    expect(await verifier.verify('dev-7', 'secret-7')).toBe(true);
    expect(lookups.length).toBe(3); // served from the cache
  });

  it('refuses wrong secrets, unknown devices and malformed ids', async () => {
    const { repo, lookups } = fakeRepository({ a: 'right' });
    const verifier = new DeviceCredentialVerifier(repo);
    expect(await verifier.verify('a', 'wrong')).toBe(false);
    expect(await verifier.verify('ghost', 'right')).toBe(false);
    expect(await verifier.verify('a', undefined)).toBe(false);
    expect(await verifier.verify('a/b', 'right')).toBe(false);
    expect(await verifier.verify('a', 'right')).toBe(true);
    // A wrong secret after a cached success is still checked against the stored hash and refused.
    expect(await verifier.verify('a', 'wrong')).toBe(false);
    expect(lookups.flat()).not.toContain('a/b');
  });

  it('forgets a device at once on eviction (decommission)', async () => {
    const { repo, devices } = fakeRepository({ a: 'right' });
    const verifier = new DeviceCredentialVerifier(repo);
    expect(await verifier.verify('a', 'right')).toBe(true);
    delete devices['a'];
    verifier.evict('a');
    expect(await verifier.verify('a', 'right')).toBe(false);
  });

  it('does not re-cache a credential evicted while its lookup was in flight, and keeps caching everyone else', async () => {
    const { repo, lookups, devices } = fakeRepository({ a: 'right', b: 'other' });
    const verifier = new DeviceCredentialVerifier(repo);
    const pendingA = verifier.verify('a', 'right');
    const pendingB = verifier.verify('b', 'other');
    verifier.evict('a'); // decommissioned while the lookup runs
    verifier.evict('c'); // an enrollment elsewhere: must not stop caching of a and b
    expect(await pendingA).toBe(true); // answered from the row read before the eviction
    expect(await pendingB).toBe(true);
    delete devices['a'];
    expect(await verifier.verify('a', 'right')).toBe(false); // not cached: looked up again
    const before = lookups.length;
    expect(await verifier.verify('b', 'other')).toBe(true);
    expect(lookups.length).toBe(before); // b stayed cached
  });
});
