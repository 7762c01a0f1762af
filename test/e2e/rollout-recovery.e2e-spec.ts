import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { orderMembers } from '../../apps/control-plane/src/rollouts/planning/membership.js';
import { waveBoundaries, waveOfOrdinal } from '../../apps/control-plane/src/rollouts/planning/wave-math.js';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { type ControlPlaneProcess, removeDir, type ScratchDatabase, scratchDatabase, startControlPlane } from '../support/control-plane.process.js';
import { listDevices, modelOf, seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { countEvents, createRollout, rolloutDevices, rolloutEvents, type RolloutView, waitForRollout, waitForState } from '../support/sim-rollouts.js';

const DEVICES = 30;
const WAVES = [
  { percent: 10, bakeSeconds: 1, successPercent: 100 },
  { percent: 50, bakeSeconds: 1, successPercent: 100 },
  { percent: 100, bakeSeconds: 1, successPercent: 100 },
];

/** Expected wave of every device: md5(rolloutId:deviceId) order sliced by the cumulative boundaries. */
function expectedWaves(rolloutId: string, deviceIds: string[]): Map<string, number> {
  const ordered = orderMembers(rolloutId, deviceIds);
  const boundaries = waveBoundaries(WAVES, ordered.length);
  return new Map(ordered.map((id, i) => [id, waveOfOrdinal(boundaries, i + 1)]));
}

async function checkRun(api: FleetApi, r: RolloutView, deviceIds: string[], model: string): Promise<{ sizes: number[]; committed: number[] }> {
  expect(r.state).toBe('completed');
  const events = await rolloutEvents(api, r.id);
  // A wave never starts twice (compare-and-set on current_wave).
  expect([...countEvents(events, 'wave-started').entries()].sort()).toEqual(WAVES.map((_, i) => [i, 1]));
  expect(events.filter((e) => e.type === 'completed')).toHaveLength(1);
  const members = await rolloutDevices(api, r.id);
  const expected = expectedWaves(r.id, deviceIds);
  expect(new Map(members.map((m) => [m.deviceId, m.wave]))).toEqual(expected);
  const devices = await listDevices(api, { tag: 'fleet:recovery' });
  expect(devices.filter((d) => modelOf(d, model)?.activeVersion === '1.0.0')).toHaveLength(deviceIds.length);
  return { sizes: r.waves.map((w) => w.size), committed: r.waves.map((w) => w.counts['committed'] ?? 0) };
}

/**
 * Crash safety of the rollout engine (issue #4): the control plane is SIGKILLed in the middle of
 * a wave and restarted on the same database, data directory and ports; the rollout must end
 * exactly where an uninterrupted run of the same definition ends.
 */
describe('rollout across a control-plane crash', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess;
  let api: FleetApi;
  let sim: SimGroup;

  beforeAll(async () => {
    db = await scratchDatabase();
    cp = await startControlPlane(db ? { databaseUrl: db.url } : {});
    api = new FleetApi(cp.baseUrl, cp.adminKey);
    await seedSimulatedModel(api, 'steady', ['1.0.0']);
    await seedSimulatedModel(api, 'crashed', ['1.0.0']);
    const token = await api.createEnrollmentToken('recovery', { fleet: 'recovery' });
    sim = SimGroup.start(cp.baseUrl, token, { idPrefix: 'rec', devices: DEVICES });
    await sim.waitOnline(api);
  }, 120_000);

  afterAll(async () => {
    await sim?.stop();
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  }, 60_000);

  it('SIGKILL mid-wave and restart: same waves, same final versions as an uninterrupted run, no wave started twice', async () => {
    const definition = (model: string): Record<string, unknown> => ({ model, version: '1.0.0', target: { tags: { fleet: 'recovery' } }, waves: WAVES });

    const steady = await createRollout(api, definition('steady'));
    const steadyDone = await waitForState(api, steady.id, ['completed', 'paused', 'rolled-back'], 60_000);
    const uninterrupted = await checkRun(api, steadyDone, sim.deviceIds, 'steady');

    const crashed = await createRollout(api, definition('crashed'));
    // Kill the moment wave 1 has started, while its devices are being told or are updating.
    // A freshly created rollout is `scheduled` until the engine's next tick starts it, so only
    // states after `running` end the wait early.
    const midWave = await waitForRollout(api, crashed.id, 'wave 1 to start', (r) => r.currentWave >= 1 || !['scheduled', 'running'].includes(r.state), 30_000);
    expect(midWave.currentWave).toBe(1);
    await cp.kill();
    cp = await startControlPlane({
      dataDir: cp.dataDir,
      httpPort: cp.httpPort,
      mqttPort: cp.mqttPort,
      adminKey: cp.adminKey,
      ...(db ? { databaseUrl: db.url } : {}),
    });
    api = new FleetApi(cp.baseUrl, cp.adminKey);

    const crashedDone = await waitForState(api, crashed.id, ['completed', 'paused', 'rolled-back'], 90_000).catch(async (err: unknown) => {
      // Show what the stragglers' device_models rows say next to their rollout state.
      const stuck = (await rolloutDevices(api, crashed.id)).filter((m) => m.state !== 'committed' && m.state !== 'pending');
      const rows = await Promise.all(stuck.map(async (m) => ({ member: m, device: await api.deviceModel(m.deviceId, 'crashed') })));
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}
stragglers: ${JSON.stringify(rows, null, 1)}`,
        { cause: err },
      );
    });
    const afterCrash = await checkRun(api, crashedDone, sim.deviceIds, 'crashed');
    expect(afterCrash).toEqual(uninterrupted);
    expect(afterCrash.committed.reduce((a, b) => a + b, 0)).toBe(DEVICES);
    // The agents reconnected to the restarted broker on their own.
    await waitFor('every device online again', async () => (await listDevices(api, { tag: 'fleet:recovery', online: 'true' })).length === DEVICES, 60_000, 500);
  }, 240_000);
});

/**
 * Two control-plane replicas on one PostgreSQL database and one external broker (Mosquitto),
 * both up the whole time: only the lease holder drives, so every wave starts once and every
 * device is told once. PostgreSQL only (PGlite is a single embedded process).
 */
const withPostgres = process.env['DATABASE_URL'] ? describe : describe.skip;
withPostgres('rollout driven by two replicas on one PostgreSQL database', () => {
  let db: ScratchDatabase | undefined;
  const replicas: ControlPlaneProcess[] = [];
  let sim: SimGroup | undefined;

  afterAll(async () => {
    await sim?.stop();
    for (const r of replicas) {
      await r.stop();
      await removeDir(r.dataDir);
    }
    await db?.drop();
  }, 60_000);

  it('drives a rollout exactly once', async () => {
    db = await scratchDatabase();
    const url = db!.url;
    const group = `fleetline_e2e_${randomBytes(4).toString('hex')}`;
    const env = { MQTT_URL: 'mqtt://127.0.0.1:1883', MQTT_SHARED_GROUP: group };
    const first = await startControlPlane({ databaseUrl: url, env });
    replicas.push(first);
    const second = await startControlPlane({ databaseUrl: url, adminKey: first.adminKey, env });
    replicas.push(second);
    const api1 = new FleetApi(first.baseUrl, first.adminKey);
    const api2 = new FleetApi(second.baseUrl, second.adminKey);

    const model = `twin-${randomBytes(3).toString('hex')}`;
    await seedSimulatedModel(api1, model, ['1.0.0']);
    const prefix = `twin${randomBytes(3).toString('hex')}`;
    const token = await api1.createEnrollmentToken('twins', { fleet: prefix });
    sim = SimGroup.start(first.baseUrl, token, { idPrefix: prefix, devices: 20 });
    await sim.waitOnline(api2);

    const created = await createRollout(api1, {
      model,
      version: '1.0.0',
      target: { tags: { fleet: prefix } },
      waves: [
        { percent: 10, bakeSeconds: 1, successPercent: 100 },
        { percent: 50, bakeSeconds: 1, successPercent: 100 },
        { percent: 100, bakeSeconds: 1, successPercent: 100 },
      ],
    });
    const done = await waitForState(api2, created.id, ['completed', 'paused', 'rolled-back'], 90_000);
    expect(done.state).toBe('completed');
    expect(done.counts).toEqual({ committed: 20 });
    expect(first.child.exitCode).toBeNull();
    expect(second.child.exitCode).toBeNull();

    const events = await rolloutEvents(api1, created.id);
    expect([...countEvents(events, 'wave-started').entries()].sort()).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    expect(events.filter((e) => e.type === 'completed')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'republished')).toHaveLength(0);
    // Each device told exactly once: the first assignment of a model is revision 1.
    const members = await rolloutDevices(api2, created.id);
    expect(members).toHaveLength(20);
    expect(members.map((m) => m.revision)).toEqual(members.map(() => 1));
    for (const d of await listDevices(api1, { tag: `fleet:${prefix}` })) {
      expect({ id: d.id, active: modelOf(d, model)?.activeVersion }).toEqual({ id: d.id, active: '1.0.0' });
    }
    for (const id of sim.deviceIds.slice(0, 5)) expect((await api2.deviceModel(id, model))?.desiredRevision).toBe(1);
  }, 180_000);
});
