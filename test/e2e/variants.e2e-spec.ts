import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, sha256, startFleetline, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, writeHealthScript } from '../support/agent-process.js';
import { createRollout, getRollout, type RolloutDeviceView } from '../support/sim-rollouts.js';

const MODEL = 'detector';
const VERSION = '2.0.0';

/** Three kinds of hardware that each fit a different build, and one that fits none. */
const DEVICES = [
  { id: 'var-npu', hardwareClass: 'aarch64', accelerators: ['npu'], build: 'npu-int8', file: 'npu.bin' },
  { id: 'var-gpu', hardwareClass: 'x86_64', accelerators: ['cuda'], build: 'gpu-fp16', file: 'gpu.bin' },
  { id: 'var-cpu', hardwareClass: 'x86_64', accelerators: [], build: 'cpu-fp32', file: 'cpu.bin' },
  { id: 'var-mcu', hardwareClass: 'mcu', accelerators: [], build: null, file: null },
] as const;

interface VersionTelemetryView {
  variant: string | null;
  totals: { samples: number };
  variants: { variant: string | null; stats: { samples: number } }[];
}

/**
 * One version shipping three builds of one model (int8 for NPUs, fp16 for CUDA, fp32 for CPUs) to
 * real `fleet-agent` processes on three kinds of (configured) hardware: each device is sent,
 * downloads and verifies (TUF) and installs its own build only; a device no build fits is skipped
 * by the rollout with the reason and never downloads anything.
 */
describe('builds (variants) of a version', () => {
  let fleet: FleetlineUnderTest;
  let work: string;
  const agents = new Map<string, AgentProcess>();
  const bytes = {
    'npu.bin': commandArtifact({ size: 120_000, seed: 'npu' }),
    'gpu.bin': commandArtifact({ size: 150_000, seed: 'gpu' }),
    'cpu.bin': commandArtifact({ size: 180_000, seed: 'cpu' }),
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetline-variants-'));
    fleet = await startFleetline();
    await fleet.api.createModel(MODEL);
    const uploaded = await fleet.api.uploadFiles(
      MODEL,
      VERSION,
      Object.entries(bytes).map(([name, b]) => ({ name, bytes: b })),
      {
        runtime: 'command',
        variants: [
          { name: 'npu-int8', files: ['npu.bin'], compatibility: { accelerators: ['npu'] } },
          { name: 'gpu-fp16', files: ['gpu.bin'], compatibility: { accelerators: ['cuda'] } },
          { name: 'cpu-fp32', files: ['cpu.bin'], compatibility: { hardwareClasses: ['x86_64', 'aarch64'] } },
        ],
      },
    );
    expect(uploaded.artifacts.map((a) => [a.fileName, a.variant])).toEqual([
      ['npu.bin', 'npu-int8'],
      ['gpu.bin', 'gpu-fp16'],
      ['cpu.bin', 'cpu-fp32'],
    ]);
    const healthScript = await writeHealthScript(work);
    const token = await fleet.api.createEnrollmentToken('variants', { fleet: 'variants' });
    for (const d of DEVICES) {
      const agent = await AgentProcess.create({
        config: {
          hardwareClass: d.hardwareClass,
          accelerators: [...d.accelerators],
          runtimes: { command: { command: healthScript, timeoutSeconds: 30 } },
          healthCheckTimeoutSeconds: 30,
        },
      });
      agents.set(d.id, agent);
      const enrolled = await agent.enroll(fleet.cp.baseUrl, token, { id: d.id });
      expect(enrolled.code).toBe(0);
      await agent.start();
    }
    for (const d of DEVICES) {
      await waitFor(`${d.id} online with its inventory`, async () => {
        const v = await fleet.api.device(d.id);
        return v.online && v.inventory?.hardwareClass === d.hardwareClass;
      });
    }
  }, 180_000);

  afterAll(async () => {
    for (const agent of agents.values()) {
      if (agent.running) await agent.stop();
      await agent.remove();
    }
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('gives each device its own build and skips the one no build fits before it downloads anything', async () => {
    const rollout = await createRollout(fleet.api, { model: MODEL, version: VERSION, target: { tags: { fleet: 'variants' } }, waves: [{ percent: 100 }] });
    expect(rollout).toMatchObject({ targetCount: 3, skippedCount: 1 });
    const done = await waitFor(
      'the rollout to finish',
      async () => {
        const r = await getRollout(fleet.api, rollout.id);
        return r.finishedAt ? r : undefined;
      },
      120_000,
      500,
    );
    expect(done).toMatchObject({ state: 'completed', counts: { committed: 3, skipped: 1 } });

    const listed = (await fleet.api.request<{ items: RolloutDeviceView[] }>('GET', `/api/v1/rollouts/${rollout.id}/devices?limit=10`, undefined, 200)).body
      .items;
    const byId = new Map(listed.map((d) => [d.deviceId, d]));
    for (const d of DEVICES) {
      const row = byId.get(d.id)!;
      const agent = agents.get(d.id)!;
      if (d.build === null) {
        expect(row).toMatchObject({ state: 'skipped', variant: null, notifiedAt: null, revision: null });
        expect(row.reason).toBe(
          'incompatible-hardware: no build fits: npu-int8 (needs npu); gpu-fp16 (needs cuda); cpu-fp32 (hardware class mcu not in [x86_64, aarch64])',
        );
        // Never assigned, never reported, nothing downloaded or installed.
        expect(await fleet.api.deviceModel(d.id, MODEL)).toBeUndefined();
        expect((await agent.status()).models).toEqual([]);
        expect(await readdir(join(agent.dataDir, 'downloads')).catch(() => [])).toEqual([]);
        expect(await readdir(join(agent.dataDir, 'models')).catch(() => [])).toEqual([]);
        continue;
      }
      expect(row).toMatchObject({ state: 'committed', variant: d.build });
      expect(await fleet.api.deviceModel(d.id, MODEL)).toMatchObject({ activeVersion: VERSION, desiredVariant: d.build, variant: d.build });
      // Exactly its build's file, with the uploaded (signed) bytes, and no other build's.
      expect(await readdir(join(agent.dataDir, 'models', MODEL, 'current'))).toEqual([d.file]);
      expect(sha256(await agent.activeFile(MODEL, d.file))).toBe(sha256(bytes[d.file]));
      expect((await agent.status()).models).toEqual([
        expect.objectContaining({
          model: MODEL,
          activeVersion: VERSION,
          activeVariant: d.build,
          update: expect.objectContaining({ variant: d.build, state: 'committed' }),
        }),
      ]);
    }
  }, 180_000);

  it('keeps telemetry per build and filters the version query by build', async () => {
    const telemetry = (query: string): Promise<VersionTelemetryView> =>
      fleet.api.request<VersionTelemetryView>('GET', `/api/v1/telemetry/models/${MODEL}/versions/${VERSION}${query}`, undefined, 200).then((r) => r.body);
    // Agents send one (possibly empty) aggregate per active version every 5 s, naming their build.
    const all = await waitFor(
      'telemetry from all three builds',
      async () => {
        const t = await telemetry('');
        return t.variants.filter((v) => v.stats.samples > 0).length === 3 ? t : undefined;
      },
      60_000,
      1000,
    );
    expect(all.variants.map((v) => v.variant)).toEqual(['cpu-fp32', 'gpu-fp16', 'npu-int8']);
    const npu = await telemetry('?variant=npu-int8');
    expect(npu.variant).toBe('npu-int8');
    expect(npu.variants.map((v) => v.variant)).toEqual(['npu-int8']);
    expect(npu.totals.samples).toBeGreaterThan(0);
    expect(npu.totals.samples).toBeLessThan(all.totals.samples);
    await fleet.api.request('GET', `/api/v1/telemetry/models/${MODEL}/versions/${VERSION}?variant=NOT_A_BUILD`, undefined, 400);
  }, 90_000);
});
