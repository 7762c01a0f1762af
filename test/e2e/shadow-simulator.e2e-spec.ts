import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline, waitFor } from '../support/agent-fleet.js';
import { SimGroup } from '../support/sim-fleet.js';

interface RolloutView {
  id: string;
  state: string;
  currentWave: number;
  finishedAt: string | null;
  counts: Record<string, number>;
  waves: { idx: number; size: number; gates: { results: { metric: string; passed: boolean | null; value: number | null; samples: number }[] } | null }[];
}

/** 1,000 by default (the scale); SHADOW_SIM_DEVICES makes a smoke run smaller. */
const DEVICES = Number(process.env['SHADOW_SIM_DEVICES'] ?? 1000);
/** The candidate answers differently from the active version on this share of inferences. */
const DISAGREEMENT = 0.2;

/**
 * Shadow evaluation at fleet scale, real processes end to end: a built control plane and
 * `fleet-agent simulate` devices (full agents: reconciler, TUF-verified downloads, journal, MQTT)
 * whose simulated candidate disagrees with the active version on a known share of inferences. The
 * shadow wave's devices stage the candidate, mirror their traffic to it and report agreement; the
 * gate measures the share within a tolerance, and its threshold stops the rollout before any
 * device activates the candidate.
 */
describe(`shadow wave on ${DEVICES} simulated devices`, () => {
  let fleet: FleetlineUnderTest;
  let sim: SimGroup | undefined;

  const rollout = async (id: string): Promise<RolloutView> => (await fleet.api.request<RolloutView>('GET', `/api/v1/rollouts/${id}`, undefined, 200)).body;

  beforeAll(async () => {
    fleet = await startFleetline();
    await fleet.api.createModel('counter');
    for (const v of ['1.0.0', '2.0.0'])
      await fleet.api.uploadVersion('counter', v, { name: 'counter.bin', bytes: randomBytes(4096) }, { runtime: 'simulated' });
  }, 120_000);

  afterAll(async () => {
    await sim?.stop();
    await fleet?.close();
  });

  it('measures the disagreement and stops the rollout at the shadow gate before anyone switches', async () => {
    const token = await fleet.api.createEnrollmentToken('shadow-fleet', { fleet: 'shadow-sim' });
    sim = SimGroup.start(fleet.cp.baseUrl, token, {
      idPrefix: 'shadow-sim',
      devices: DEVICES,
      workers: 2,
      telemetryIntervalSeconds: 5,
      behaviours: ['*:rate=4,errorRate=0', `2.0.0:rate=4,errorRate=0,latencyMs=2,disagreement=${DISAGREEMENT}`],
    });
    await sim.waitOnline(fleet.api, 180_000);
    const failWith = (what: string) => (err: unknown) => {
      throw new Error(`${what}: ${err instanceof Error ? err.message : String(err)}\nsimulator (tail):\n${sim?.log() ?? ''}`);
    };

    const base = await fleet.api.request<RolloutView>(
      'POST',
      '/api/v1/rollouts',
      { model: 'counter', version: '1.0.0', target: { tags: { fleet: 'shadow-sim' } }, waves: [{ percent: 100 }] },
      201,
    );
    await waitFor('the fleet to run 1.0.0', async () => ((await rollout(base.body.id)).state === 'completed' ? true : undefined), 180_000, 500).catch(
      failWith('installing 1.0.0'),
    );

    const created = await fleet.api.request<RolloutView>(
      'POST',
      '/api/v1/rollouts',
      {
        model: 'counter',
        version: '2.0.0',
        target: { tags: { fleet: 'shadow-sim' } },
        waves: [
          {
            action: 'shadow',
            percent: 10,
            shadow: { samplePercent: 50, durationSeconds: 600 },
            gates: [{ metric: 'shadow_agreement', min: 0.9 }],
            minSamples: 1500,
            windowSeconds: 300,
            onGateFailure: 'pause',
          },
          { percent: 11 },
          { percent: 100 },
        ],
      },
      201,
    );
    const id = created.body.id;
    const paused = await waitFor(
      'the shadow gate to stop the rollout',
      async () => {
        const r = await rollout(id);
        if (r.state !== 'running' && r.state !== 'paused') throw new Error(`rollout ${r.state}`);
        return r.state === 'paused' ? r : undefined;
      },
      180_000,
      500,
    ).catch(failWith('shadow wave'));
    expect(paused.currentWave).toBe(0);
    const [gate] = paused.waves[0]!.gates!.results;
    expect(gate).toMatchObject({ metric: 'shadow_agreement', passed: false });
    expect(gate!.samples).toBeGreaterThanOrEqual(1500);
    // The measured share within a tolerance of the candidate's known disagreement.
    expect(gate!.value!).toBeGreaterThan(1 - DISAGREEMENT - 0.04);
    expect(gate!.value!).toBeLessThan(1 - DISAGREEMENT + 0.04);
    // Staged, never activated: the whole fleet still runs 1.0.0.
    expect(paused.counts['downloaded']).toBe(paused.waves[0]!.size);
    expect(paused.counts['committed'] ?? 0).toBe(0);
    const summary = await fleet.api.fleetSummary();
    expect(summary.models.find((m) => m.model === 'counter')?.versions).toEqual([{ version: '1.0.0', devices: DEVICES }]);
  }, 600_000);
});
