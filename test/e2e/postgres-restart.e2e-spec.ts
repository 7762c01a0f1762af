import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { seqHoles, storedSeqs } from '../support/telemetry-seqs.js';
import { type ControlPlaneProcess, removeDir, startControlPlane } from '../support/control-plane.process.js';
import { type PrivatePostgres, startPrivatePostgres } from '../support/private-postgres.js';
import { listDevices, metricValue, modelOf, scrapeMetrics, seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { createRollout, getRollout, rolloutDevices } from '../support/sim-rollouts.js';

const DEVICES = 60;

/**
 * PostgreSQL crashes (immediate shutdown: no checkpoint, crash recovery on restart) while a rollout
 * runs and every device floods telemetry. What the control plane acknowledged must survive the
 * crash, and what it could not store it must not have acknowledged: agents keep those messages in
 * their outboxes and resend them once the database is back. So afterwards every device's stored
 * telemetry seqs have no hole, every device's rollout reports were applied (all committed), and the
 * control plane itself stayed up throughout.
 *
 * Runs its own PostgreSQL server (initdb on an ephemeral port), so the crash touches nothing else.
 */
describe('PostgreSQL crash-restarted during a rollout and a telemetry flood', () => {
  let db: PrivatePostgres | undefined;
  let cp: ControlPlaneProcess | undefined;
  let sim: SimGroup | undefined;
  let pool: pg.Pool | undefined;

  afterAll(async () => {
    await sim?.stop();
    await pool?.end().catch(() => undefined);
    await cp?.stop();
    await db?.stop();
    if (cp) await removeDir(cp.dataDir);
  });

  it('keeps every acknowledged write, and devices resend the rest', async () => {
    db = await startPrivatePostgres();
    cp = await startControlPlane({ databaseUrl: db.url, env: { ROLLOUT_TICK_SECONDS: '1', ENROLL_RATE_PER_SECOND: '0' } });
    const api = new FleetApi(cp.baseUrl, cp.adminKey);
    await seedSimulatedModel(api, 'counter', ['1.0.0', '2.0.0']);
    const token = await api.createEnrollmentToken('pgcrash', { fleet: 'pgcrash' });
    sim = SimGroup.start(cp.baseUrl, token, { idPrefix: 'pgc', devices: DEVICES, telemetryIntervalSeconds: 1 });
    await sim.waitOnline(api);
    for (const id of sim.deviceIds) await api.assign(id, 'counter', '1.0.0');

    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pool.on('error', () => undefined); // idle connections die with the crash; the pool replaces them
    const perDevice = () => storedSeqs(pool!, 'pgc-');
    await waitFor(
      'every device on 1.0.0 and sending telemetry',
      async () => {
        const seen = await perDevice();
        return seen.size === DEVICES && [...seen.values()].every((d) => d.n >= 3);
      },
      120_000,
      500,
    );

    // A rollout that moves a few devices at a time, so the crash lands in the middle of it.
    const rollout = await createRollout(api, {
      model: 'counter',
      version: '2.0.0',
      target: { tags: { fleet: 'pgcrash' } },
      waves: [{ percent: 100 }],
      maxInFlight: 6,
    });
    await waitFor('a part of the fleet committed 2.0.0', async () => ((await getRollout(api, rollout.id)).counts['committed'] ?? 0) >= 6, 120_000, 250);
    const before = await perDevice();
    const refusedBefore = metricValue(await scrapeMetrics(cp.baseUrl), 'fleetline_mqtt_denials_total', { kind: 'publish' }) ?? 0;

    await db.crashRestart(5_000);

    // The control plane rode out the outage: same process, ready again.
    await waitFor('the control plane ready again', async () => (await fetch(`${cp!.baseUrl}/readyz`).catch(() => undefined))?.status === 200, 60_000, 250);
    expect(cp.child.exitCode).toBeNull();
    // The outage was felt: messages arrived that could not be stored, and were not acknowledged.
    expect(metricValue(await scrapeMetrics(cp.baseUrl), 'fleetline_mqtt_denials_total', { kind: 'publish' }) ?? 0).toBeGreaterThan(refusedBefore);

    const done = await waitFor(
      'the rollout completed',
      async () => {
        const r = await getRollout(api, rollout.id);
        return r.finishedAt !== null ? r : undefined;
      },
      300_000,
      500,
    );
    expect(done.state).toBe('completed');
    const rows = await rolloutDevices(api, rollout.id);
    expect(rows.filter((r) => r.state !== 'committed').map((r) => `${r.deviceId} ${r.state} ${r.reason ?? ''}`)).toEqual([]);
    expect(rows).toHaveLength(DEVICES);
    const devices = await listDevices(api, { tag: 'fleet:pgcrash' });
    expect(devices.filter((d) => modelOf(d, 'counter')?.activeVersion === '2.0.0')).toHaveLength(DEVICES);

    // Telemetry: every device sent well past what was stored before the crash, with no hole.
    await waitFor(
      'every device sending again after the crash',
      async () => {
        const now = await perDevice();
        return [...before].every(([id, b]) => (now.get(id)?.max ?? -1) >= b.max + 5);
      },
      120_000,
      500,
    );
    const after = await perDevice();
    const holes = seqHoles(after);
    if (holes.length > 0) {
      // What the control plane did with the missing seqs tells a refusal from a loss.
      const metrics = (await scrapeMetrics(cp.baseUrl)).split('\n').filter((l) => l.startsWith('fleetline_telemetry_'));
      const rows = await pool.query<{ device_id: string; seq: number; version: string; interval_start: Date; interval_end: Date }>(
        `SELECT device_id, seq, version, interval_start, interval_end FROM telemetry_samples WHERE device_id = ANY ($1) ORDER BY device_id, seq`,
        [holes.map((h) => h.split(':')[0])],
      );
      const refusals = cp
        .output()
        .split('\n')
        .filter((l) => l.includes('telemetry refused'));
      console.log(
        `${refusals.join('\n')}\n${metrics.join('\n')}\n${rows.rows.map((r) => `${r.device_id} ${r.seq} ${r.version} ${r.interval_start.toISOString()} ${r.interval_end.toISOString()}`).join('\n')}`,
      );
    }
    expect(holes).toEqual([]);
    expect(after.size).toBe(DEVICES);
    expect(sim.running).toBe(true);
  }, 600_000);
});
