import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { type ControlPlaneProcess, removeDir, type ScratchDatabase, scratchDatabase, startControlPlane } from '../support/control-plane.process.js';
import { listDevices, modelOf, SimGroup } from '../support/sim-fleet.js';
import { createRollout, type GateResultView, rolloutEvents, waitForState } from '../support/sim-rollouts.js';

const MODEL = 'seg';
/** Simulated inferences per second per device: enough samples for the gates within seconds. */
const RATE = 10;

/**
 * Gates judge each build of a version on its own. The candidate ships an int8 build for NPU boards
 * and an fp32 build for CPUs; only the int8 build is slow. The NPU boards are a fifth of the canary
 * ring, so the version's median latency stays where the baseline's is and a version-level gate
 * passes, but the int8 build's canaries are compared with the baseline's int8 build (NPU boards
 * outside the rollout, on 1.0.0) and that breach pauses the rollout.
 */
describe('health gates per build (variant)', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess;
  let api: FleetApi;
  const groups: SimGroup[] = [];

  beforeAll(async () => {
    db = await scratchDatabase();
    cp = await startControlPlane(db ? { databaseUrl: db.url } : {});
    api = new FleetApi(cp.baseUrl, cp.adminKey);
    await api.createModel(MODEL);
    for (const version of ['1.0.0', '2.0.0']) {
      await api.uploadFiles(
        MODEL,
        version,
        [
          { name: 'int8.bin', bytes: randomBytes(2048) },
          { name: 'fp32.bin', bytes: randomBytes(4096) },
        ],
        {
          runtime: 'simulated',
          variants: [
            { name: 'npu-int8', files: ['int8.bin'], compatibility: { accelerators: ['npu'] } },
            { name: 'cpu-fp32', files: ['fp32.bin'], compatibility: { hardwareClasses: ['sim'] } },
          ],
        },
      );
    }
    const canary = await api.createEnrollmentToken('canary-ring', { ring: 'canary' });
    const base = await api.createEnrollmentToken('base-ring', { ring: 'base' });
    const npuSlow = [`*:rate=${RATE}`, `2.0.0:latencyMs=200,rate=${RATE}`];
    const sim = (token: string, idPrefix: string, devices: number, accelerators: string[], behaviours: string[]) =>
      SimGroup.start(cp.baseUrl, token, { idPrefix, devices, accelerators, behaviours, telemetryIntervalSeconds: 1 });
    groups.push(
      sim(canary, 'cnpu', 4, ['npu'], npuSlow),
      sim(canary, 'ccpu', 16, [], [`*:rate=${RATE}`]),
      sim(base, 'bnpu', 4, ['npu'], npuSlow),
      sim(base, 'bcpu', 8, [], [`*:rate=${RATE}`]),
    );
    await Promise.all(groups.map((g) => g.waitOnline(api)));
    for (const g of groups) for (const id of g.deviceIds) await api.assign(id, MODEL, '1.0.0');
    await waitFor(
      'every device on its build of 1.0.0',
      async () => (await listDevices(api, { q: '' })).filter((d) => modelOf(d, MODEL)?.activeVersion === '1.0.0').length === 32,
      90_000,
      500,
    );
  }, 240_000);

  afterAll(async () => {
    await Promise.all(groups.map((g) => g.stop()));
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  }, 60_000);

  it('pauses on the build that regressed although the version as a whole passes', async () => {
    const r = await createRollout(api, {
      model: MODEL,
      version: '2.0.0',
      target: { tags: { ring: 'canary' } },
      waves: [
        {
          percent: 100,
          bakeSeconds: 1,
          successPercent: 100,
          gates: [{ metric: 'latency_p50', maxRatio: 1.5 }],
          minSamples: 300,
          windowSeconds: 60,
          onGateFailure: 'pause',
        },
      ],
    });
    expect(r.baselineVersion).toBe('1.0.0');
    const final = await waitForState(api, r.id, ['paused', 'completed', 'rolled-back'], 180_000);
    expect(final.state).toBe('paused');

    const paused = (await rolloutEvents(api, r.id)).find((e) => e.type === 'paused');
    expect(paused?.message).toMatch(/latency_p50\[npu-int8\]=\S+ \(breached/);
    const results = paused?.data['gates'] as (GateResultView & { variant?: string })[];
    const byScope = new Map(results.map((g) => [g.variant ?? 'version', g]));
    // The version's median hides the slow build...
    expect(byScope.get('version')?.passed).toBe(true);
    // ...its build-level results do not: int8 against the baseline's int8, fp32 against fp32.
    expect(byScope.get('npu-int8')).toMatchObject({ passed: false, metric: 'latency_p50' });
    expect(byScope.get('npu-int8')!.reason).toMatch(/^build npu-int8 \(baseline: its build npu-int8\)/);
    expect(byScope.get('npu-int8')!.value!).toBeGreaterThan(1.5 * byScope.get('npu-int8')!.baseline!);
    expect(byScope.get('cpu-fp32')).toMatchObject({ passed: true });
  }, 240_000);
});
