import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { loadConfig } from '../infra/config/config.schema.js';
import { createScratchDatabase, eventually } from '../testing/test-app.fixture.js';
import { DriverLease, ROLLOUT_DRIVER_LOCK_KEY } from './driver-lease.js';
import type { LeaseTimings } from './driver-lease-policy.js';
import { startTcpProxy, type TcpProxy } from './testing/tcp-proxy.js';

const TIMINGS: LeaseTimings = { heartbeatMs: 200, retryMs: 200, checkTimeoutMs: 500 };

function configFor(databaseUrl: string) {
  return loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    MQTT_PORT: '0',
    DATA_DIR: join(tmpdir(), 'fleetline-lease-test'),
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'error',
  });
}

describe('driver lease on pglite', () => {
  it('always drives (one process owns the data dir) and stops on stop()', async () => {
    const lease = new DriverLease(configFor(''), TIMINGS);
    let acquired = 0;
    lease.onAcquired(() => acquired++);
    await lease.start();
    expect(lease.isDriver()).toBe(true);
    expect(acquired).toBe(1);
    await lease.stop();
    expect(lease.isDriver()).toBe(false);
  });
});

const databaseUrl = process.env['DATABASE_URL'];
if (!databaseUrl && process.env['CI']) throw new Error('DATABASE_URL must be set in CI: the driver lease is tested on PostgreSQL');

(databaseUrl ? describe : describe.skip)('driver lease on postgres', () => {
  let scratch: { url: string; drop: () => Promise<void> };
  let proxy: TcpProxy;
  const leases: DriverLease[] = [];

  const lockHolders = async (): Promise<number[]> => {
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    try {
      const r = await client.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [ROLLOUT_DRIVER_LOCK_KEY],
      );
      return r.rows.map((row) => row.pid);
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const target = new URL(scratch.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  });
  afterAll(async () => {
    for (const lease of leases) await lease.stop();
    await proxy.close();
    await scratch.drop();
  });

  it('gives up a lease whose heartbeat hangs within the timeout, and another replica takes it', async () => {
    const viaProxy = new URL(scratch.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const a = new DriverLease(configFor(viaProxy.toString()), TIMINGS);
    const b = new DriverLease(configFor(scratch.url), TIMINGS);
    leases.push(a, b);
    await a.start();
    expect(a.isDriver()).toBe(true);
    await b.start();
    await new Promise((resolve) => setTimeout(resolve, 3 * TIMINGS.retryMs)); // b keeps trying meanwhile
    expect([a.isDriver(), b.isDriver()]).toEqual([true, false]);
    expect(await lockHolders()).toHaveLength(1);

    // A's link to the database dies silently: its next heartbeat never answers.
    proxy.freeze();
    const frozenAt = Date.now();
    await eventually(() => (a.isDriver() ? undefined : true), 5_000, 'a to stop driving');
    // At most one heartbeat period until the check starts, plus the check's deadline.
    expect(Date.now() - frozenAt).toBeLessThan(TIMINGS.heartbeatMs + TIMINGS.checkTimeoutMs + 400);

    // The server ends the abandoned session by itself (idle_session_timeout), which frees the lock for b.
    await eventually(() => (b.isDriver() ? true : undefined), 10_000, 'b to take the lease');
    expect(a.isDriver()).toBe(false);
    expect(await lockHolders()).toHaveLength(1);
  });
});
