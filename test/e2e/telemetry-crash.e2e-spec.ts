import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { seqHoles, storedSeqs } from '../support/telemetry-seqs.js';
import { type ControlPlaneProcess, removeDir, scratchDatabase, startControlPlane, type ScratchDatabase } from '../support/control-plane.process.js';
import { seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';

const DEVICES = 150;

/**
 * Nothing acknowledged is lost: real agents (`fleet-agent simulate`, one telemetry message per
 * device a second) flood the control plane, which is SIGKILLed mid-flood and restarted on the same
 * database. An agent deletes a message from its outbox once acknowledged and sends the next one
 * (seqs count up from 0 per device), so an acknowledged sample the control plane lost would be a
 * hole in the device's stored seqs once it has sent more after the restart.
 *
 * Needs PostgreSQL (DATABASE_URL, set by CI): the test reads the samples while the control plane runs.
 */
describe('telemetry across a control-plane SIGKILL', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess | undefined;
  let sim: SimGroup | undefined;
  let client: pg.Client | undefined;

  afterAll(async () => {
    await sim?.stop();
    await client?.end().catch(() => undefined);
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  });

  it('stores every sample the agents saw acknowledged', async () => {
    if (!process.env['DATABASE_URL']) throw new Error('this test reads PostgreSQL: set DATABASE_URL');
    db = await scratchDatabase();
    cp = await startControlPlane({ databaseUrl: db!.url });
    const first = cp;
    const api = new FleetApi(first.baseUrl, first.adminKey);
    await seedSimulatedModel(api, 'counter', ['1.0.0']);
    const token = await api.createEnrollmentToken('flood', { fleet: 'flood' });
    sim = SimGroup.start(first.baseUrl, token, { idPrefix: 'flood', devices: DEVICES, telemetryIntervalSeconds: 1, workers: 2, download: 'skip' });
    await sim.waitOnline(api);
    for (const id of sim.deviceIds) await api.assign(id, 'counter', '1.0.0');

    client = new pg.Client({ connectionString: db!.url });
    await client.connect();
    const perDevice = () => storedSeqs(client!, 'flood-');

    // Flooding: every device has been sending for a few seconds.
    await waitFor(
      'every device sending telemetry',
      async () => {
        const seen = await perDevice();
        return seen.size === DEVICES && [...seen.values()].every((d) => d.n >= 3);
      },
      90_000,
      250,
    );

    await first.kill();
    const before = await perDevice();
    cp = await startControlPlane({
      dataDir: first.dataDir,
      databaseUrl: db!.url,
      httpPort: first.httpPort,
      mqttPort: first.mqttPort,
      adminKey: first.adminKey,
    });

    // Every device reconnected, flushed its outbox and sent more than it had before the kill.
    await waitFor(
      'every device sending again after the restart',
      async () => {
        const now = await perDevice();
        return [...before].every(([id, b]) => (now.get(id)?.max ?? -1) >= b.max + 3);
      },
      120_000,
      500,
    );

    const after = await perDevice();
    const holes = seqHoles(after);
    expect(holes).toEqual([]);
    expect(after.size).toBe(DEVICES);
    expect(sim.running).toBe(true);
  }, 400_000);
});
