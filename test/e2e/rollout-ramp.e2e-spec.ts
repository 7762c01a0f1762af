import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline } from '../support/agent-fleet.js';
import { listDevices, modelOf, seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { createRollout, rolloutDevices, rolloutEvents, waitForRollout } from '../support/sim-rollouts.js';

const RATE = 10;
/** More devices than one minute's rate, so the ramp has to spread them over more than one window. */
const DEVICES = 13;
const WINDOW_MS = 60_000;

/** The largest number of notices inside any window [t, t + 60 s) (the engine's window is that long). */
function busiestWindow(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + WINDOW_MS) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

/**
 * A ramped rollout (planning/ramp.ts) against the built control plane and a real simulated fleet:
 * at 10 notices a minute, no 60 s window of the devices' notification times (rollout_devices.notified_at,
 * as GET /rollouts/{id}/devices shows them) holds more than 10, and every device still ends committed.
 */
describe('ramped rollout with simulated agents', () => {
  let fleet: FleetlineUnderTest;
  let sim: SimGroup;

  beforeAll(async () => {
    fleet = await startFleetline();
    await seedSimulatedModel(fleet.api, 'ramp-model', ['1.0.0']);
    const token = await fleet.api.createEnrollmentToken('ramp', { fleet: 'ramp' });
    sim = SimGroup.start(fleet.cp.baseUrl, token, { idPrefix: 'ramp', devices: DEVICES });
    await sim.waitOnline(fleet.api);
  }, 120_000);

  afterAll(async () => {
    await sim?.stop();
    await fleet?.close();
  }, 60_000);

  it(`tells at most ${RATE} devices in any 60 s window, and all ${DEVICES} end committed`, async () => {
    const api = fleet.api;
    const created = await createRollout(api, {
      model: 'ramp-model',
      version: '1.0.0',
      target: { tags: { fleet: 'ramp' } },
      waves: [{ percent: 100 }],
      ramp: { ratePerMinute: RATE, growthFactor: 1 },
    });
    expect(created.targetCount).toBe(DEVICES);

    // At 10 a minute, paced pro rata (one every 6 s), 13 devices take about 72 s.
    const done = await waitForRollout(
      api,
      created.id,
      'completed, every device committed',
      (r) => r.state === 'completed' && r.counts['committed'] === DEVICES,
      110_000,
    );
    expect(done.counts).toEqual({ committed: DEVICES });

    const members = await rolloutDevices(api, created.id);
    expect(members).toHaveLength(DEVICES);
    // Told once each (no retry or republish stamped a row again), so notifiedAt is the one notice.
    expect(members.map((m) => [m.deviceId, m.state, m.attempts])).toEqual(members.map((m) => [m.deviceId, 'committed', 1]));
    const times = members.map((m) => Date.parse(m.notifiedAt!));
    expect(times.every(Number.isFinite)).toBe(true);
    expect(busiestWindow(times)).toBeLessThanOrEqual(RATE);
    // The ramp spread them out (not one burst held back and let go): the first and last notice are more than a window apart.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(WINDOW_MS);

    const events = await rolloutEvents(api, created.id);
    expect(events.filter((e) => e.type === 'wave-started')).toHaveLength(1);
    const devices = await listDevices(api, { tag: 'fleet:ramp' });
    expect(devices.filter((d) => modelOf(d, 'ramp-model')?.activeVersion === '1.0.0')).toHaveLength(DEVICES);
  }, 150_000);
});
