import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readmeTour as tour } from '../../demo/readme-tour.mjs';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import {
  type ControlPlaneProcess,
  freePort,
  removeDir,
  repoRoot,
  type ScratchDatabase,
  scratchDatabase,
  startControlPlane,
} from '../support/control-plane.process.js';
import { listDevices, modelOf } from '../support/sim-fleet.js';
import { rolloutEvents, type RolloutView } from '../support/sim-rollouts.js';

/** Files the blocks write into the working directory (the repository root, as for a reader). */
const WRITTEN_FILES = [
  'demo/simulated-fleet.log',
  'seg-int8.bin',
  'seg-fp16.bin',
  'seg-fp32.bin',
  'seg-variants.json',
  // the offline-keys section's second control plane, its log, the operator's keys and the artifact
  '.data-offline',
  '.data-offline.log',
  'fleet-keys',
  'detector-2.0.0.onnx',
];

/**
 * The environment of a reader's shell: this process's, without the server settings the test run
 * itself is given. A control plane a block starts (`npm start`) must run on its defaults, PGlite in
 * its DATA_DIR, as it does for a reader; with CI's DATABASE_URL it would share a database, and the
 * TUF repository another test left in it, and refuse to start.
 */
function readerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'MQTT_URL', 'MQTT_USERNAME', 'MQTT_PASSWORD', 'FLEET_ADMIN_KEY']) delete env[name];
  return env;
}

interface ShellRun {
  code: number | null;
  output: string;
  seconds: number;
}

/** How long one block may take before it is stopped and its output shown (a slow CI box included). */
const BLOCK_LIMIT_MS = 540_000;

/**
 * The README's tour and its variants section, taken from README.md and run as written by bash from
 * the repository root, against a fresh control plane on ephemeral ports. Only FLEET_SERVER and
 * FLEET_API_KEY are set, the two variables the tour's first line honours; everything else is the
 * server's default, as `npm start` runs it.
 */
describe('README tour, run as written', () => {
  let db: ScratchDatabase | undefined;
  let cp: ControlPlaneProcess;
  let api: FleetApi;
  const shellPids: number[] = [];

  /**
   * One block with `bash -e -o pipefail` (the first failing command ends it, so a broken step cannot
   * hide behind a later one), in its own process group with the simulators it starts in the
   * background. A block still running after BLOCK_LIMIT_MS is stopped, and its output kept for the
   * failure message, so a step that hangs shows which one it was.
   */
  const runBlock = (script: string, env: Record<string, string> = {}): Promise<ShellRun> =>
    new Promise<ShellRun>((resolve) => {
      const started = Date.now();
      const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
        cwd: repoRoot,
        env: { ...readerEnv(), FLEET_SERVER: cp.baseUrl, FLEET_API_KEY: cp.adminKey, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      if (child.pid !== undefined) shellPids.push(child.pid);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const limit = setTimeout(() => {
        output += `\n[stopped: still running after ${BLOCK_LIMIT_MS / 1000} s]\n`;
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      }, BLOCK_LIMIT_MS);
      // The background simulators keep the pipes open: the shell's own exit ends the run.
      child.once('exit', (code) => {
        clearTimeout(limit);
        resolve({ code, output, seconds: Math.round((Date.now() - started) / 1000) });
      });
    });

  /** The part of a run a failure message shows, with the end of the simulated fleet's log the tour writes. */
  const shown = (run: ShellRun): { code: number | null; seconds: number; output: string; fleetLog: string } => {
    let fleetLog = '';
    try {
      fleetLog = readFileSync(join(repoRoot, 'demo/simulated-fleet.log'), 'utf8').slice(-2000);
    } catch {
      // not written (yet)
    }
    return { code: run.code, seconds: run.seconds, output: run.output.slice(-3000), fleetLog };
  };

  beforeAll(async () => {
    db = await scratchDatabase();
    // The defaults of `npm start` (the e2e helper otherwise speeds the engine up and lifts the enroll limit).
    cp = await startControlPlane({ ...(db ? { databaseUrl: db.url } : {}), env: { ROLLOUT_TICK_SECONDS: '2', ENROLL_RATE_PER_SECOND: '5' } });
    api = new FleetApi(cp.baseUrl, cp.adminKey);
  }, 120_000);

  afterAll(async () => {
    // The simulated fleets the tour started in the background share the shell's process group.
    for (const pid of shellPids) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(WRITTEN_FILES.map((f) => rm(join(repoRoot, f), { recursive: true, force: true })));
    await cp?.stop();
    await db?.drop();
    if (cp) await removeDir(cp.dataDir);
  }, 60_000);

  it('is marked in README.md with the commands it promises', () => {
    const first = tour('first-hour');
    expect(first).toContain('npx fleetctl models upload detector --version 1.1.0 --file demo/models/detector-1.1.0.onnx');
    expect(first).toMatch(/npx fleet-agent simulate .*--behaviour 1\.1\.0:latencyMs=80,errorRate=0\.05/s);
    expect(first).toMatch(/--gate latency_p95:maxRatio=1\.2 .*--min-samples 500 --window 60/s);
    expect(first).toContain('--on-gate-failure rollback --watch');
    // Nothing in the tour is tied to a port or key other than through the two variables.
    expect(first.replace(/\$\{FLEET_SERVER:-http:\/\/127\.0\.0\.1:3000\}/, '')).not.toMatch(/127\.0\.0\.1|:3000/);
    expect(tour('variants')).not.toMatch(/127\.0\.0\.1|:3000/);
  });

  it(
    'runs every command; the gated rollout of 1.1.0 is stopped by its gate and rolled back',
    async () => {
      const tourRun = await runBlock(tour('first-hour'));
      // The last command, `rollouts create ... --watch`, exits 4 when the rollout is rolled back; any
      // earlier failure would have ended the block with its own code.
      expect(shown(tourRun)).toMatchObject({ code: 4 });
      expect(tourRun.output).toMatch(/error: rollout \S+ rolled-back: health gates failed in wave 1: latency_p95=/);

      const rollouts = (await api.request<{ items: RolloutView[] }>('GET', '/api/v1/rollouts?model=detector', undefined, 200)).body.items;
      const baseline = rollouts.find((r) => r.version === '1.0.0');
      const gated = rollouts.find((r) => r.version === '1.1.0');
      expect(baseline?.state).toBe('completed');
      expect(gated?.state).toBe('rolled-back');

      const detail = (await api.request<RolloutView>('GET', `/api/v1/rollouts/${gated!.id}`, undefined, 200)).body;
      expect(detail.currentWave).toBe(0);
      expect(detail.waves[1]?.startedAt).toBeNull();
      const events = await rolloutEvents(api, gated!.id);
      expect(events.find((e) => e.type === 'aborted')?.message).toMatch(/health gates failed in wave 1: .*latency_p95=/);
      expect(events.some((e) => e.type === 'rollback-finished')).toBe(true);

      // Every device of the tour ends on 1.0.0 again. "Rolled back" means their assignments were
      // reverted; the wave's devices then install 1.0.0 again, which takes them a moment.
      let notBack: string[] = [];
      await waitFor(
        'every device back on 1.0.0',
        async () => {
          const devices = await listDevices(api, { tag: 'region:eu' });
          expect(devices).toHaveLength(50);
          notBack = devices.filter((d) => modelOf(d, 'detector')?.activeVersion !== '1.0.0').map((d) => d.id);
          return notBack.length === 0;
        },
        60_000,
        500,
      ).catch(() => undefined);
      expect(notBack).toEqual([]);
    },
    BLOCK_LIMIT_MS + 60_000,
  );

  it(
    'runs the variants section after it: each device takes the build that fits, microcontrollers are skipped',
    async () => {
      const variantsRun = await runBlock(tour('variants'));
      expect(shown(variantsRun)).toMatchObject({ code: 0 });
      const lines = variantsRun.output.split('\n');
      const taken = (prefix: string): string[] => lines.filter((l) => l.startsWith(prefix));
      expect(taken('npu-').length).toBe(20);
      expect(taken('npu-').every((l) => l.endsWith(' committed npu-int8'))).toBe(true);
      expect(taken('gpu-').every((l) => l.endsWith(' committed gpu-fp16'))).toBe(true);
      expect(taken('cpu-').every((l) => l.endsWith(' committed cpu-fp32'))).toBe(true);
      expect(taken('mcu-')).toHaveLength(5);
      for (const line of taken('mcu-')) {
        expect(line).toContain(
          'skipped incompatible-hardware: no build fits: npu-int8 (needs npu); gpu-fp16 (needs cuda); cpu-fp32 (hardware class mcu not in [sim])',
        );
      }
      // The last command: telemetry of the npu-int8 build as JSON.
      expect(variantsRun.output).toMatch(/"variant":\s*"npu-int8"|"variants"/);
    },
    BLOCK_LIMIT_MS + 60_000,
  );

  it(
    'runs the offline-keys section: a version signed on the operator side is published, then keys rotate',
    async () => {
      // Its own server: ephemeral ports through the two variables the block honours, nothing else.
      await Promise.all(WRITTEN_FILES.map((f) => rm(join(repoRoot, f), { recursive: true, force: true })));
      const offlineRun = await runBlock(tour('offline-keys'), { OFFLINE_PORT: String(await freePort()), OFFLINE_MQTT_PORT: String(await freePort()) });
      expect(shown(offlineRun)).toMatchObject({ code: 0 });
      // The last command lists the version as published (it was awaiting-signature until `targets sign`).
      const listing = offlineRun.output.split('\n').filter((l) => l.includes('2.0.0'));
      expect(listing.some((l) => l.includes('published'))).toBe(true);
      expect(offlineRun.output).toContain('awaiting a targets signature');
      expect(offlineRun.output).toMatch(/published root v2; new keys:\n {2}targets +[0-9a-f]{64}\n {2}timestamp +[0-9a-f]{64}/);
    },
    BLOCK_LIMIT_MS + 60_000,
  );
});
