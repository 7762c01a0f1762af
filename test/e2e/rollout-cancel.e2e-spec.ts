import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, sleep, startFleetline } from '../support/agent-fleet.js';
import { AgentProxy } from '../support/agent-proxy.js';
import { listDevices, modelOf, SimGroup } from '../support/sim-fleet.js';
import { createRollout, getRollout, rolloutAction, rolloutDevices, rolloutEvents, waitForRollout } from '../support/sim-rollouts.js';

const DEVICES = 6;
const FIRST_WAVE = 3;
const ARTIFACT_BYTES = 200_000;
/** Slow enough that a download lasts ~50 s: the devices are certainly still downloading when the rollout is cancelled. */
const THROTTLE_BYTES_PER_SECOND = 4_000;

interface HistoryEntry {
  rolloutId: string;
  rolloutState: string;
  state: string;
  notifiedAt: string | null;
}

/**
 * Cancelling a rollout while its first wave is still downloading (downloads slowed by a proxy in
 * front of the control plane): nobody new is told, and the devices already told finish on their
 * own, so the rollout, its device list and each device's rollout history end with their final
 * states instead of `downloading` forever.
 */
describe('cancel with devices still installing', () => {
  let fleet: FleetlineUnderTest;
  let proxy: AgentProxy;
  let sim: SimGroup;

  beforeAll(async () => {
    fleet = await startFleetline();
    proxy = await AgentProxy.start(fleet.cp.baseUrl);
    await fleet.api.createModel('cancel-model');
    await fleet.api.uploadVersion('cancel-model', '1.0.0', { name: 'weights.bin', bytes: randomBytes(ARTIFACT_BYTES) }, { runtime: 'simulated' });
    const token = await fleet.api.createEnrollmentToken('cancel', { fleet: 'cancel' });
    // Enrolled through the proxy: the answers name its address, so the devices download through it.
    sim = SimGroup.start(proxy.url, token, { idPrefix: 'cancel', devices: DEVICES });
    await sim.waitOnline(fleet.api);
  }, 120_000);

  afterAll(async () => {
    await sim?.stop();
    await proxy?.close();
    await fleet?.close();
  }, 60_000);

  it('cancelled mid-download: the told devices commit and every view shows it; nobody else is told', async () => {
    const api = fleet.api;
    proxy.bytesPerSecond = THROTTLE_BYTES_PER_SECOND;
    const created = await createRollout(api, {
      model: 'cancel-model',
      version: '1.0.0',
      target: { tags: { fleet: 'cancel' } },
      waves: [{ count: FIRST_WAVE }, { percent: 100 }],
    });
    expect(created.targetCount).toBe(DEVICES);
    await waitForRollout(api, created.id, 'the first wave downloading', (r) => r.counts['downloading'] === FIRST_WAVE, 60_000);

    const cancelled = await rolloutAction(api, created.id, 'cancel');
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.counts).toEqual({ downloading: FIRST_WAVE, pending: DEVICES - FIRST_WAVE });

    // Several engine ticks (0.5 s each) while the downloads are held: a cancelled rollout tells nobody.
    await sleep(3_000);
    expect((await getRollout(api, created.id)).counts).toEqual({ downloading: FIRST_WAVE, pending: DEVICES - FIRST_WAVE });

    proxy.bytesPerSecond = 0;
    const settled = await waitForRollout(api, created.id, 'the told devices committed', (r) => r.counts['committed'] === FIRST_WAVE, 60_000);
    expect(settled.state).toBe('cancelled');
    expect(settled.finishedAt).not.toBeNull();
    expect(settled.counts).toEqual({ committed: FIRST_WAVE, pending: DEVICES - FIRST_WAVE });
    expect(settled.waves.map((w) => w.counts)).toEqual([{ committed: FIRST_WAVE }, { pending: DEVICES - FIRST_WAVE }]);

    const members = await rolloutDevices(api, created.id);
    const told = members.filter((m) => m.wave === 0);
    const untold = members.filter((m) => m.wave === 1);
    expect(told.map((m) => m.state)).toEqual(told.map(() => 'committed'));
    expect(untold.map((m) => [m.state, m.notifiedAt, m.revision])).toEqual(untold.map(() => ['pending', null, null]));

    // Each device's rollout history (the dashboard's device page) says the same.
    for (const m of members) {
      const history = (await api.request<{ items: HistoryEntry[] }>('GET', `/api/v1/devices/${m.deviceId}/rollouts`, undefined, 200)).body.items;
      const entry = history.find((h) => h.rolloutId === created.id);
      expect({ device: m.deviceId, entry }).toEqual({
        device: m.deviceId,
        entry: expect.objectContaining({ rolloutState: 'cancelled', state: m.wave === 0 ? 'committed' : 'pending' }),
      });
    }

    // Nobody new was told: the second wave never started and its devices have no desired version.
    const events = await rolloutEvents(api, created.id);
    expect(events.filter((e) => e.type === 'wave-started').map((e) => e.wave)).toEqual([0]);
    const devices = new Map((await listDevices(api, { tag: 'fleet:cancel' })).map((d) => [d.id, d]));
    for (const m of told) expect([m.deviceId, modelOf(devices.get(m.deviceId)!, 'cancel-model')?.activeVersion]).toEqual([m.deviceId, '1.0.0']);
    for (const m of untold) expect([m.deviceId, modelOf(devices.get(m.deviceId)!, 'cancel-model')?.desiredVersion ?? null]).toEqual([m.deviceId, null]);
    const stats = await sim.stop();
    expect(stats?.active['cancel-model']).toEqual({ '1.0.0': FIRST_WAVE });
  }, 150_000);
});
