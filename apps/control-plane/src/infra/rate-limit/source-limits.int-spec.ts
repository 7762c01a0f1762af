import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { AppConfig } from '../config/app-config.js';
import { eventually } from '../../testing/test-app.fixture.js';
import { SourceLimits } from './source-limits.js';

/**
 * Two replicas' limiters, each with its own Redis connection, on the real Redis
 * (REDIS_TEST_URL, default redis://127.0.0.1:6379), in a database of their own (15) under a
 * prefix of this run, removed afterwards.
 */
const redisUrl = `${process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379'}/15`;

type Policy = AppConfig['rateLimits']['enroll'];

function config(enroll: Policy, deviceAuthFailures: Policy, redis: { redisUrl: string; keyPrefix: string } | undefined): AppConfig {
  return { rateLimits: { enroll, deviceAuthFailures, auditRefusals: { burst: 1, perSecond: 1 }, ...(redis ? { shared: redis } : {}) } } as unknown as AppConfig;
}

describe('SourceLimits shared through Redis', () => {
  const keyPrefix = `fleetline-test:${randomBytes(4).toString('hex')}:`;
  const admin = new Redis(redisUrl, { lazyConnect: true });
  const started: SourceLimits[] = [];

  async function replica(enroll: Policy, auth: Policy, url = redisUrl): Promise<SourceLimits> {
    const limits = new SourceLimits(config(enroll, auth, { redisUrl: url, keyPrefix }));
    await limits.onModuleInit();
    started.push(limits);
    return limits;
  }

  beforeAll(async () => {
    await admin.connect();
  });

  afterAll(async () => {
    for (const limits of started) await limits.onApplicationShutdown();
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  it('holds one enrollment limit across two replicas', async () => {
    const slow = { burst: 5, perSecond: 0.01 };
    const [a, b] = [await replica(slow, slow), await replica(slow, slow)];
    const waits: number[] = [];
    // Alternating replicas, as a load balancer would: alone, each would allow 5.
    for (let i = 0; i < 8; i++) waits.push(await (i % 2 === 0 ? a : b).takeEnroll('198.51.100.1'));
    expect(waits.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    for (const wait of waits.slice(5)) {
      expect(wait).toBeGreaterThan(90_000);
      expect(wait).toBeLessThanOrEqual(100_000);
    }
    // Another source has its own bucket.
    expect(await b.takeEnroll('198.51.100.2')).toBe(0);
    // Refusals are counted by the replica that refused (the metric labels are unchanged).
    expect((a.limitedCounts().get('enroll') ?? 0) + (b.limitedCounts().get('enroll') ?? 0)).toBe(3);
    expect(a.storeErrors + b.storeErrors).toBe(0);
    // The key expires when its bucket would be full again, so idle sources cost Redis nothing.
    const ttl = await admin.pttl(`${keyPrefix}enroll:198.51.100.1`);
    expect(ttl).toBeGreaterThan(400_000);
    expect(ttl).toBeLessThanOrEqual(500_000);
  });

  it('refuses a source on one replica for failures it had on the other, until the bucket refills', async () => {
    const auth = { burst: 3, perSecond: 10 };
    const [a, b] = [await replica({ burst: 1, perSecond: 1 }, auth), await replica({ burst: 1, perSecond: 1 }, auth)];
    const source = '203.0.113.7';
    for (let i = 0; i < 3; i++) {
      expect(await b.checkDeviceAuth(source, 'device_auth_mqtt')).toBe(0);
      await a.deviceAuthFailed(source);
    }
    const wait = await b.checkDeviceAuth(source, 'device_auth_mqtt');
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(100);
    expect(b.limitedCounts().get('device_auth_mqtt')).toBe(1);
    expect(await a.checkDeviceAuth(source, 'device_auth_http')).toBeGreaterThan(0);
    // One token comes back every 100 ms.
    await eventually(async () => ((await b.checkDeviceAuth(source, 'device_auth_mqtt')) === 0 ? true : undefined), 5_000, 'the bucket to refill');
  });

  it('falls back to per-replica buckets while Redis cannot be reached, counting each check', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const policy = { burst: 2, perSecond: 0.01 };
    const limits = await replica(policy, policy, `redis://127.0.0.1:${closed}/15`);
    expect([await limits.takeEnroll('192.0.2.9'), await limits.takeEnroll('192.0.2.9')]).toEqual([0, 0]);
    expect(await limits.takeEnroll('192.0.2.9')).toBeGreaterThan(0);
    expect(limits.storeErrors).toBe(3);
  });
});
