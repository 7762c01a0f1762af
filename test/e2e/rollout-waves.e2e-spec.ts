import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline, waitFor } from '../support/agent-fleet.js';
import { listDevices, modelOf, seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { countEvents, createRollout, getRollout, rolloutAction, rolloutDevices, rolloutEvents, waitForRollout, waitForState } from '../support/sim-rollouts.js';

const BIG = 500;
const GUARD_OK = 16;
const GUARD_BAD = 8;

/**
 * Staged rollouts (issue #4) against the built control plane and real simulated agents:
 * a four-wave rollout over 500 devices, a wave paused by injected health-check failures, and an
 * abort that reverts the devices to the version they ran before.
 */
describe('staged rollouts with simulated agents', () => {
  let fleet: FleetlineUnderTest;
  const groups: SimGroup[] = [];

  let big: SimGroup;
  let guardOk: SimGroup;
  let guardBad: SimGroup;

  beforeAll(async () => {
    fleet = await startFleetline();
    const api = fleet.api;
    await seedSimulatedModel(api, 'wave-model', ['2.0.0']);
    await seedSimulatedModel(api, 'guard-model', ['1.0.0', '2.0.0']);
    const token = await api.createEnrollmentToken('simulated-fleet', undefined, { deviceTagKeys: ['fleet', 'health'] });
    // Two groups share the target tag; only the "bad" one fails the health check of 2.0.0, so
    // failure counts are exact once wave membership is known.
    guardOk = SimGroup.start(fleet.cp.baseUrl, token, { idPrefix: 'guard-ok', devices: GUARD_OK, tags: { fleet: 'guard', health: 'ok' } });
    guardBad = SimGroup.start(fleet.cp.baseUrl, token, {
      idPrefix: 'guard-bad',
      devices: GUARD_BAD,
      tags: { fleet: 'guard', health: 'bad' },
      behaviours: ['2.0.0:healthFail=1'],
    });
    big = SimGroup.start(fleet.cp.baseUrl, token, { idPrefix: 'big', devices: BIG, workers: 2, tags: { fleet: 'big' }, telemetryIntervalSeconds: 30 });
    groups.push(guardOk, guardBad, big);
    await Promise.all([guardOk.waitOnline(api), guardBad.waitOnline(api), big.waitOnline(api, 120_000)]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(groups.map((g) => g.stop()));
    await fleet?.close();
  }, 60_000);

  it(`completes a 4-wave rollout (1/10/50/100 %) over ${BIG} devices, every device committed`, async () => {
    const api = fleet.api;
    const created = await createRollout(api, {
      model: 'wave-model',
      version: '2.0.0',
      target: { tags: { fleet: 'big' } },
      waves: [
        { percent: 1, bakeSeconds: 1, successPercent: 90 },
        { percent: 10, bakeSeconds: 1, successPercent: 90 },
        { percent: 50, bakeSeconds: 1, successPercent: 90 },
        { percent: 100, bakeSeconds: 1, successPercent: 90 },
      ],
    });
    expect(created.targetCount).toBe(BIG);
    expect(created.waves.map((w) => w.size)).toEqual([5, 45, 200, 250]);

    const done = await waitForState(api, created.id, ['completed', 'paused', 'aborted', 'rolled-back', 'cancelled'], 150_000);
    expect(done.state).toBe('completed');
    // The last wave completes at its 90 % threshold; devices still installing then keep being
    // followed, so every row ends committed.
    const settled = await waitForRollout(api, created.id, 'every device committed', (r) => r.counts['committed'] === BIG, 60_000);
    expect(settled.state).toBe('completed');
    expect(settled.counts).toEqual({ committed: BIG });
    expect(settled.waves.map((w) => w.counts['committed'])).toEqual([5, 45, 200, 250]);

    const events = await rolloutEvents(api, created.id);
    expect([...countEvents(events, 'wave-started').entries()].sort()).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    expect(events.at(-1)?.type).toBe('completed');

    const devices = await listDevices(api, { tag: 'fleet:big' });
    expect(devices).toHaveLength(BIG);
    expect(devices.filter((d) => modelOf(d, 'wave-model')?.activeVersion === '2.0.0')).toHaveLength(BIG);
    const summary = await api.fleetSummary();
    expect(summary.models.find((m) => m.model === 'wave-model')?.versions).toEqual([{ version: '2.0.0', devices: BIG }]);

    const stats = await big.stop();
    expect(stats?.active['wave-model']).toEqual({ '2.0.0': BIG });
    expect(stats?.failures).toEqual({});
  }, 300_000);

  describe('health-check failures and abort', () => {
    let rolloutId: string;
    let members: Awaited<ReturnType<typeof rolloutDevices>>;
    const isBad = (id: string): boolean => id.startsWith('guard-bad-');

    it('puts the guarded fleet on 1.0.0 first (one-wave rollout)', async () => {
      const api = fleet.api;
      const v1 = await createRollout(api, { model: 'guard-model', version: '1.0.0', target: { tags: { fleet: 'guard' } }, waves: [{ percent: 100 }] });
      const done = await waitForState(api, v1.id, ['completed', 'paused', 'rolled-back'], 60_000);
      expect(done.state).toBe('completed');
      expect(done.counts).toEqual({ committed: GUARD_OK + GUARD_BAD });
    }, 90_000);

    it('pauses wave 1 when its health-check failures reach the threshold; later waves are never told', async () => {
      const api = fleet.api;
      const definition = {
        model: 'guard-model',
        version: '2.0.0',
        target: { tags: { fleet: 'guard' } },
        // Scheduled far ahead so the membership can be inspected before anything is told.
        startAt: new Date(Date.now() + 3_600_000).toISOString(),
        onFailure: 'pause',
        waves: [
          { count: 2, bakeSeconds: 1, successPercent: 90, failure: { count: 2, minExecuted: 1 } },
          { count: 12, bakeSeconds: 1, successPercent: 90, failure: { count: 2, minExecuted: 1 } },
          { percent: 100, bakeSeconds: 1, successPercent: 90, failure: { count: 2, minExecuted: 1 } },
        ],
      };
      // Membership is a hash of the (server-chosen) rollout id: draw until wave 0 holds only
      // healthy devices and wave 1 at least two failing ones, so the outcome is exact.
      for (let attempt = 0; ; attempt++) {
        expect(attempt).toBeLessThan(40);
        const r = await createRollout(api, definition);
        expect(r.state).toBe('scheduled');
        const m = await rolloutDevices(api, r.id);
        const bad = (wave: number): number => m.filter((d) => d.wave === wave && isBad(d.deviceId)).length;
        if (bad(0) === 0 && bad(1) >= 2) {
          rolloutId = r.id;
          members = m;
          break;
        }
        await rolloutAction(api, r.id, 'cancel');
      }
      const wave = (w: number): string[] => members.filter((d) => d.wave === w).map((d) => d.deviceId);
      const badInWave1 = wave(1).filter(isBad).length;
      expect(wave(0)).toHaveLength(2);
      expect(wave(1)).toHaveLength(10);
      expect(wave(2)).toHaveLength(12);

      await rolloutAction(api, rolloutId, 'advance');
      const paused = await waitForState(api, rolloutId, ['paused', 'completed', 'aborted', 'rolled-back'], 60_000);
      expect(paused.state).toBe('paused');
      expect(paused.currentWave).toBe(1);
      expect(paused.stateReason).toMatch(/failure condition met in wave 2: \d+ failed of \d+ executed/);

      const events = await rolloutEvents(api, rolloutId);
      const pause = events.find((e) => e.type === 'paused');
      expect(pause?.wave).toBe(1);
      const failedAtPause = Number(pause?.data['failed']);
      expect(failedAtPause).toBeGreaterThanOrEqual(2);
      expect(failedAtPause).toBeLessThanOrEqual(badInWave1);
      expect(pause?.message).toContain(`${failedAtPause} failed of ${String(pause?.data['executed'])} executed`);
      expect(pause?.data['failure']).toEqual({ count: 2, minExecuted: 1 });
      expect([...countEvents(events, 'wave-started').keys()].sort()).toEqual([0, 1]);

      // Devices already told finish on their own: wave 1 settles with exactly its failing devices failed.
      const settled = await waitForRollout(
        api,
        rolloutId,
        'wave 1 to settle',
        (r) => (r.waves[1]?.counts['failed'] ?? 0) + (r.waves[1]?.counts['committed'] ?? 0) === 10,
        60_000,
      );
      expect(settled.waves[0]?.counts).toEqual({ committed: 2 });
      expect(settled.waves[1]?.counts).toEqual({ committed: 10 - badInWave1, failed: badInWave1 });
      expect(settled.waves[2]?.counts).toEqual({ pending: 12 });
      expect(settled.state).toBe('paused');

      // Nobody outside the started waves was told: device_models.desired_version is still 1.0.0.
      const devices = new Map((await listDevices(api, { tag: 'fleet:guard' })).map((d) => [d.id, d]));
      for (const id of wave(2)) {
        expect({ id, desired: modelOf(devices.get(id)!, 'guard-model')?.desiredVersion }).toEqual({ id, desired: '1.0.0' });
        expect(modelOf(devices.get(id)!, 'guard-model')?.activeVersion).toBe('1.0.0');
      }
      for (const id of wave(1).filter(isBad)) expect(modelOf(devices.get(id)!, 'guard-model')?.activeVersion).toBe('1.0.0');
      for (const id of [...wave(0), ...wave(1).filter((d) => !isBad(d))]) expect(modelOf(devices.get(id)!, 'guard-model')?.activeVersion).toBe('2.0.0');
    }, 120_000);

    it('abort reverts every committed device to its previous version', async () => {
      const api = fleet.api;
      expect(rolloutId).toBeDefined();
      const aborted = await rolloutAction(api, rolloutId, 'abort');
      // rolling-back while the engine reverts the devices, then rolled-back.
      expect(['rolling-back', 'rolled-back']).toContain(aborted.state);
      const final = await waitForState(api, rolloutId, ['rolled-back'], 60_000);
      expect(final.finishedAt).not.toBeNull();
      const told = members.filter((d) => d.wave === 0 || d.wave === 1).length;
      expect(final.counts['rolled-back']).toBe(told);
      // Wave 2 was never told: nothing to revert there.
      expect(final.counts['pending']).toBe(members.filter((d) => d.wave === 2).length);

      const devicesBack = await listDevices(api, { tag: 'fleet:guard' });
      expect(devicesBack).toHaveLength(GUARD_OK + GUARD_BAD);
      const onV1 = async (): Promise<boolean> =>
        (await listDevices(api, { tag: 'fleet:guard' })).every(
          (d) => modelOf(d, 'guard-model')?.activeVersion === '1.0.0' && modelOf(d, 'guard-model')?.desiredVersion === '1.0.0',
        );
      await waitFor('every guarded device back on 1.0.0', onV1, 60_000, 300);
      const summary = await api.fleetSummary();
      expect(summary.models.find((m) => m.model === 'guard-model')?.versions).toEqual([{ version: '1.0.0', devices: GUARD_OK + GUARD_BAD }]);
      const events = await rolloutEvents(api, rolloutId);
      expect(events.map((e) => e.type)).toContain('aborted');
      expect(events.find((e) => e.type === 'rollback-finished')?.data).toMatchObject({ rolledBack: told, state: 'rolled-back' });
      expect(await getRollout(api, rolloutId)).toMatchObject({ state: 'rolled-back' });
    }, 90_000);
  });
});
