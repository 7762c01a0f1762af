import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { type ControlPlaneProcess, removeDir, type ScratchDatabase, scratchDatabase, startControlPlane } from '../support/control-plane.process.js';
import { seedSimulatedModel } from '../support/sim-fleet.js';
import { countEvents, getRollout, rolloutEvents, type RolloutView, waitForState } from '../support/sim-rollouts.js';

const DEVICES = 5_000;
const MODEL = 'prepared';

/**
 * Crash safety of rollout preparation (issue #15): the control plane is SIGKILLed while the engine
 * is inside the transaction that materialises a `preparing` rollout's membership, and restarted on
 * the same database. The restarted driver must prepare it from the start, exactly once.
 * PostgreSQL only: the test holds the model's advisory lock from its own session, which keeps the
 * preparation waiting half-way (rollout row locked, ids staged) for as long as the test likes.
 */
const withPostgres = process.env['DATABASE_URL'] ? describe : describe.skip;
withPostgres('rollout preparation across a control-plane crash', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess | undefined;
  let locker: pg.Client | undefined;

  beforeAll(async () => {
    db = await scratchDatabase();
  }, 60_000);

  afterAll(async () => {
    await locker?.end().catch(() => undefined);
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  }, 60_000);

  it('SIGKILL mid-preparation and restart: the next driver prepares the rollout once, with every member', async () => {
    cp = await startControlPlane({ databaseUrl: db!.url });
    let api = new FleetApi(cp.baseUrl, cp.adminKey);
    await seedSimulatedModel(api, MODEL, ['1.0.0']);
    locker = new pg.Client({ connectionString: db!.url });
    await locker.connect();
    await locker.query(
      `INSERT INTO devices (id, tags, hardware_class, agent_version, credential_hash)
       SELECT 'prep-' || g, '{}'::jsonb, 'rpi4', '0.1.0', 'x' FROM generate_series(1, $1::int) AS g`,
      [DEVICES],
    );
    await locker.query(`SELECT pg_advisory_lock(hashtext('fleetline.rollout-model:' || $1))`, [MODEL]);

    const ids = Array.from({ length: DEVICES }, (_, i) => `prep-${i + 1}`);
    const created = await api.request<RolloutView>(
      'POST',
      '/api/v1/rollouts',
      { model: MODEL, version: '1.0.0', target: { deviceIds: [...ids, 'ghost'] }, waves: [{ percent: 10 }, { percent: 100 }], startAt: '2099-01-01T00:00:00Z' },
      202,
    );
    expect(created.body.state).toBe('preparing');
    const id = created.body.id;
    // The driver is inside the preparation: it locked the rollout row, staged the ids and waits for the model lock.
    await waitFor(
      'the preparation to wait for the model lock',
      async () => {
        const rows = await locker!.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'`,
        );
        return rows.rows[0]!.n > 0 ? true : undefined;
      },
      30_000,
      100,
    );
    await cp.kill();
    await locker.query(`SELECT pg_advisory_unlock(hashtext('fleetline.rollout-model:' || $1))`, [MODEL]);
    // Nothing of the half-done preparation survived the crash.
    const left = await locker.query<{ state: string; members: number; staged: number }>(
      `SELECT r.state, (SELECT count(*)::int FROM rollout_devices WHERE rollout_id = r.id) AS members,
              (SELECT count(*)::int FROM rollout_target_ids WHERE rollout_id = r.id) AS staged
       FROM rollouts r WHERE r.id = $1`,
      [id],
    );
    expect(left.rows).toEqual([{ state: 'preparing', members: 0, staged: 1 }]);

    cp = await startControlPlane({ dataDir: cp.dataDir, httpPort: cp.httpPort, mqttPort: cp.mqttPort, adminKey: cp.adminKey, databaseUrl: db!.url });
    api = new FleetApi(cp.baseUrl, cp.adminKey);
    const prepared = await waitForState(api, id, ['scheduled', 'cancelled'], 60_000);
    expect(prepared).toMatchObject({ state: 'scheduled', targetCount: DEVICES, skippedCount: 0 });
    expect(prepared.waves.map((w) => w.size)).toEqual([DEVICES / 10, DEVICES - DEVICES / 10]);
    const events = await rolloutEvents(api, id);
    expect(countEvents(events, 'prepared').get(null)).toBe(1);
    expect(events.find((e) => e.type === 'unknown-devices')).toMatchObject({ data: { count: 1, deviceIds: ['ghost'] } });
    const rows = await locker.query<{ n: number; distinct: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT ordinal)::int AS distinct FROM rollout_devices WHERE rollout_id = $1`,
      [id],
    );
    expect(rows.rows[0]).toEqual({ n: DEVICES, distinct: DEVICES });
    expect((await locker.query(`SELECT 1 FROM rollout_target_ids WHERE rollout_id = $1`, [id])).rows).toEqual([]);
    expect((await getRollout(api, id)).state).toBe('scheduled');
  }, 240_000);
});
