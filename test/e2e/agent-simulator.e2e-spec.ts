import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline, waitFor } from '../support/agent-fleet.js';
import { agentMain } from '../support/control-plane.process.js';

interface RolloutView {
  id: string;
  state: string;
  targetCount: number;
  finishedAt: string | null;
  counts: Record<string, number>;
}

interface SimulationSummary {
  devices: number;
  enrolled: number;
  enrollFailed: number;
  reports: Record<string, number>;
  failures: Record<string, number>;
  active: Record<string, Record<string, number>>;
}

const DEVICES = 200;

/**
 * `fleet-agent simulate` against the real control plane: 200 full agents (same reconciler,
 * journal and MQTT protocol as a device) in two worker processes enroll with a token, come online,
 * and all take one update delivered by a one-wave rollout. Downloads really fetch the artifact,
 * from a control plane that streams at most 2 at once (ARTIFACT_MAX_STREAMS): the rest are told
 * "busy" and wait, and still no update fails.
 */
describe('fleet-agent simulate', () => {
  let fleet: FleetlineUnderTest;
  let sim: ChildProcess | undefined;
  let simOut = '';
  let simErr = '';
  let simExit: Promise<number | null> = Promise.resolve(null);

  beforeAll(async () => {
    fleet = await startFleetline({ ARTIFACT_MAX_STREAMS: '2', ARTIFACT_BUSY_RETRY_SECONDS: '1' });
    await fleet.api.createModel('counter');
    await fleet.api.uploadVersion('counter', '2.0.0', { name: 'counter.bin', bytes: randomBytes(512 * 1024) }, { runtime: 'simulated' });
  }, 120_000);

  afterAll(async () => {
    if (sim && sim.exitCode === null) {
      sim.kill('SIGKILL');
      await simExit;
    }
    await fleet?.close();
  });

  it(`takes ${DEVICES} simulated devices through one rollout, all committed`, async () => {
    const token = await fleet.api.createEnrollmentToken('simulated-fleet', { fleet: 'sim-e2e' });
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const child = spawn(
      process.execPath,
      [
        agentMain,
        'simulate',
        '--server',
        fleet.cp.baseUrl,
        '--token',
        token,
        '--devices',
        String(DEVICES),
        '--workers',
        '2',
        '--telemetry-interval',
        '30',
        '--id-prefix',
        'sim-e2e',
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    sim = child;
    simExit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdout.on('data', (d: Buffer) => (simOut += d.toString()));
    child.stderr.on('data', (d: Buffer) => (simErr += d.toString()));
    const failWith = (what: string) => (err: unknown) => {
      throw new Error(`${what}: ${err instanceof Error ? err.message : String(err)}\nsimulator stderr (tail):\n${simErr.slice(-3000)}`);
    };

    await waitFor(
      `${DEVICES} devices online`,
      async () => {
        if (child.exitCode !== null) throw new Error(`simulator exited with ${child.exitCode}`);
        const s = await fleet.api.fleetSummary();
        return s.devices.online === DEVICES;
      },
      90_000,
      500,
    ).catch(failWith('enrolling the simulated fleet'));

    const created = await fleet.api.request<RolloutView>(
      'POST',
      '/api/v1/rollouts',
      { model: 'counter', version: '2.0.0', target: { tags: { fleet: 'sim-e2e' } }, waves: [{ percent: 100 }] },
      201,
    );
    expect(created.body.targetCount).toBe(DEVICES);

    const finished = await waitFor(
      'the rollout to finish',
      async () => {
        const r = (await fleet.api.request<RolloutView>('GET', `/api/v1/rollouts/${created.body.id}`, undefined, 200)).body;
        return r.finishedAt ? r : undefined;
      },
      120_000,
      500,
    ).catch(failWith('rolling out to the simulated fleet'));
    expect(finished.state).toBe('completed');
    expect(finished.counts['committed']).toBe(DEVICES);

    // The bound was reached (200 devices told at once, 2 streams), and waiting cost no update.
    expect(await fleet.api.metric('fleetline_artifact_streams_refused_busy_total')).toBeGreaterThan(0);
    const summary = await fleet.api.fleetSummary();
    expect(summary.models.find((m) => m.model === 'counter')?.versions).toEqual([{ version: '2.0.0', devices: DEVICES }]);

    child.kill('SIGTERM');
    expect(await simExit).toBe(0);
    const stats = JSON.parse(simOut) as SimulationSummary;
    expect(stats).toMatchObject({ devices: DEVICES, enrolled: DEVICES, enrollFailed: 0, failures: {} });
    expect(stats.reports['committed']).toBe(DEVICES);
    expect(stats.active['counter']).toEqual({ '2.0.0': DEVICES });
  }, 240_000);
});
