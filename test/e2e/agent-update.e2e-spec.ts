import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findStoredArtifact, type FleetlineUnderTest, sha256, sleep, startFleetline, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, writeHealthScript } from '../support/agent-process.js';
import { repoRoot } from '../support/control-plane.process.js';

/** The optional ONNX runtime: the agent registers it only when onnxruntime-node imports. */
function onnxRuntimeImports(): boolean {
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('onnxruntime-node')"], {
    cwd: join(repoRoot, 'device-agent'),
    stdio: 'ignore',
    timeout: 30_000,
  });
  return probe.status === 0;
}
const onnxAvailable = onnxRuntimeImports();

/**
 * One real device through its update life: the built control plane process and a real
 * `fleet-agent` process, nothing mocked. Enroll, install, switch (keeping last-known-good), refuse
 * tampered bytes, roll back a version whose health check fails, and load a real ONNX model.
 */
describe('fleet-agent updates against the control plane', () => {
  let fleet: FleetlineUnderTest;
  let agent: AgentProcess;
  let work: string;
  const MODEL = 'detector';
  const FILE = 'weights.bin';
  const v1 = commandArtifact({ size: 300_000, seed: 'v1' });
  const v2 = commandArtifact({ size: 400_000, seed: 'v2' });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetline-agent-update-'));
    fleet = await startFleetline();
    await fleet.api.createModel(MODEL);
    await fleet.api.uploadVersion(MODEL, '1.0.0', { name: FILE, bytes: v1 }, { runtime: 'command' });
    await fleet.api.uploadVersion(MODEL, '2.0.0', { name: FILE, bytes: v2 }, { runtime: 'command' });
    const healthScript = await writeHealthScript(work);
    agent = await AgentProcess.create({ config: { runtimes: { command: { command: healthScript, timeoutSeconds: 30 } }, healthCheckTimeoutSeconds: 30 } });
  }, 120_000);

  afterAll(async () => {
    if (agent) {
      if (agent.running) await agent.stop();
      await agent.remove();
    }
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('enrolls with a token and tags, then connects with its own credentials', async () => {
    const token = await fleet.api.createEnrollmentToken('e2e-batch', { batch: 'e2e' }, { deviceTagKeys: ['site'] });
    const enrolled = await agent.enroll(fleet.cp.baseUrl, token, { id: 'gate-cam-1', tags: { site: 'berlin' } });
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
    expect(enrolled.stdout).toContain('enrolled as gate-cam-1');
    expect(agent.deviceId).toBe('gate-cam-1');
    await agent.start();
    const device = await waitFor('gate-cam-1 online', async () => {
      const d = await fleet.api.device('gate-cam-1');
      return d.online ? d : undefined;
    });
    expect(device.tags).toEqual({ batch: 'e2e', site: 'berlin' });
    expect(device.inventory?.runtimes).toHaveProperty('command');
  });

  it('installs the assigned version: the active file has the uploaded bytes and the control plane shows it committed', async () => {
    await fleet.api.assign(agent.deviceId, MODEL, '1.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '1.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '1.0.0', failure: null });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v1));
    expect(await agent.modelStatus(MODEL)).toMatchObject({ activeVersion: '1.0.0', update: { version: '1.0.0', state: 'committed', inFlight: false } });
    // The application on the device sees the same through the local API.
    const local = (await (await fetch(`${agent.localApiUrl()}/v1/models/${MODEL}`)).json()) as { version: string; path: string };
    expect(local.version).toBe('1.0.0');
    expect(sha256(await readFile(join(local.path, FILE)))).toBe(sha256(v1));
  });

  it('switches to the next version and keeps the previous one as last-known-good', async () => {
    await fleet.api.assign(agent.deviceId, MODEL, '2.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '2.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '2.0.0', previousVersion: '1.0.0' });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v2));
    expect(await readlink(join(agent.dataDir, 'models', MODEL, 'previous'))).toBe(join('versions', '1.0.0'));
    expect(sha256(await readFile(join(agent.dataDir, 'models', MODEL, 'previous', FILE)))).toBe(sha256(v1));
    expect(await agent.modelStatus(MODEL)).toMatchObject({ activeVersion: '2.0.0', lastKnownGood: '1.0.0' });
  });

  it('after a restart, re-states nothing the control plane already stored', async () => {
    const accepted = async (): Promise<number> => (await fleet.api.metric('fleetline_device_messages_total', { stream: 'reported', outcome: 'accepted' })) ?? 0;
    const answered = async (): Promise<number> => (await fleet.api.metric('fleetline_desired_sync_total', { kind: 'devices' })) ?? 0;
    const reportsBefore = await accepted();
    const hellosBefore = await answered();
    expect(reportsBefore).toBeGreaterThan(0);
    await agent.kill();
    await agent.start();
    await waitFor('the hello after the restart answered', async () => ((await answered()) > hellosBefore ? true : undefined));
    // The answer carried the committed report the control plane stored, which is what the device
    // would re-state: it sends nothing (before, every connection re-sent one report per model).
    await sleep(1500);
    expect(await accepted()).toBe(reportsBefore);
    expect(await agent.modelStatus(MODEL)).toMatchObject({ activeVersion: '2.0.0', lastKnownGood: '1.0.0' });
  });

  it('refuses an artifact whose bytes were changed on the server and keeps running the previous version', async () => {
    const v3 = commandArtifact({ size: 350_000, seed: 'v3' });
    await fleet.api.uploadVersion(MODEL, '3.0.0', { name: FILE, bytes: v3 }, { runtime: 'command' });
    // Same length, different bytes: only the signed hash can tell.
    const stored = await findStoredArtifact(fleet.cp.dataDir, sha256(v3), v3.length);
    const tampered = Buffer.from(v3);
    for (let i = 1000; i < 1100; i++) tampered[i] = tampered[i]! ^ 0xff;
    await writeFile(stored, tampered);

    await fleet.api.assign(agent.deviceId, MODEL, '3.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '3.0.0', 'failed');
    expect(state.failure?.code).toBe('verification-failed');
    expect(state.activeVersion).toBe('2.0.0');
    expect(agent.running).toBe(true);
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v2));
    const status = await agent.modelStatus(MODEL);
    expect(status).toMatchObject({ activeVersion: '2.0.0', lastKnownGood: '1.0.0', update: { version: '3.0.0', state: 'failed' } });
    expect(status?.update?.failure?.code).toBe('verification-failed');
  });

  it('rolls back a version whose health check fails', async () => {
    const v4 = commandArtifact({ size: 200_000, seed: 'v4', health: 'fail' });
    await fleet.api.uploadVersion(MODEL, '4.0.0', { name: FILE, bytes: v4 }, { runtime: 'command' });
    await fleet.api.assign(agent.deviceId, MODEL, '4.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '4.0.0', 'rolled-back');
    expect(state.failure?.code).toBe('health-check-failed');
    expect(state.failure?.message).toContain('refused by the health check');
    expect(state).toMatchObject({ activeVersion: '2.0.0', previousVersion: '1.0.0' });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v2));
    expect(await agent.modelStatus(MODEL)).toMatchObject({
      activeVersion: '2.0.0',
      lastKnownGood: '1.0.0',
      update: { version: '4.0.0', state: 'rolled-back' },
    });
  });

  (onnxAvailable ? it : it.skip)('loads a real ONNX model with onnxruntime-node and commits it', async () => {
    const onnxFile = join(work, 'tiny.onnx');
    execFileSync(process.execPath, [join(repoRoot, 'device-agent/scripts/make-test-model.mjs'), onnxFile]);
    const bytes = await readFile(onnxFile);
    const device = await fleet.api.device(agent.deviceId);
    expect(device.inventory?.runtimes).toHaveProperty('onnx');
    await fleet.api.createModel('classifier');
    const uploaded = await fleet.api.uploadVersion('classifier', '1.0.0', { name: 'model.onnx', bytes }, { runtime: 'onnx', framework: 'onnx' });
    expect(uploaded.artifacts[0]?.runtime).toBe('onnx');
    await fleet.api.assign(agent.deviceId, 'classifier', '1.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, 'classifier', '1.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '1.0.0', failure: null });
    expect(sha256(await agent.activeFile('classifier', 'model.onnx'))).toBe(sha256(bytes));
    // The other model was not touched.
    expect(await fleet.api.deviceModel(agent.deviceId, MODEL)).toMatchObject({ activeVersion: '2.0.0' });
  });
});
