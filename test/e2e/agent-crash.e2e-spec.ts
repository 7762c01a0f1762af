import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, sha256, startFleetline, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, type JournalView, writeHealthScript } from '../support/agent-process.js';
import { AgentProxy } from '../support/agent-proxy.js';

const MODEL = 'detector';
const FILE = 'weights.bin';

interface CrashCase {
  state: string;
  /** Artifact size: big enough that the state lasts long enough to be caught. */
  size: number;
  /** Health-check duration in seconds (a slow self-test keeps the update in health-checking). */
  sleepSeconds: number;
  /** Proxy throttle while the update runs (bytes/s; 0 = full speed). */
  throttle: number;
}

/**
 * Power cuts during an update: a real agent process is SIGKILLed the moment its journal names
 * each in-flight state. Right after the kill the `current` pointer must still hold a complete,
 * verified version; after a restart the agent must finish the update on its own.
 * Downloads go through a transparent proxy that can throttle them and counts the bytes served.
 */
describe('fleet-agent crash recovery', () => {
  let fleet: FleetlineUnderTest;
  let proxy: AgentProxy;
  let agent: AgentProcess;
  let work: string;
  let versionCounter = 1;
  /** sha256 of the version running before each update. */
  let running: { version: string; sha: string };

  const uploadNext = async (size: number, sleepSeconds: number): Promise<{ version: string; bytes: Buffer }> => {
    const version = `1.${versionCounter++}.0`;
    const bytes = commandArtifact({ size, sleepSeconds, seed: version });
    await fleet.api.uploadVersion(MODEL, version, { name: FILE, bytes }, { runtime: 'command' });
    return { version, bytes };
  };

  /** The bytes behind `current` right now hash to one of `allowed` (complete, never partial). */
  const expectActiveIsOneOf = async (allowed: string[]): Promise<string> => {
    const sha = sha256(await agent.activeFile(MODEL, FILE));
    expect(allowed).toContain(sha);
    return sha;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetline-agent-crash-'));
    fleet = await startFleetline();
    proxy = await AgentProxy.start(fleet.cp.baseUrl);
    await fleet.api.createModel(MODEL);
    const healthScript = await writeHealthScript(work);
    // No ONNX runtime here: the agent restarts often, and loading onnxruntime-node is the slowest part of a start.
    agent = await AgentProcess.create({
      config: { runtimes: { onnx: { enabled: false }, command: { command: healthScript, timeoutSeconds: 30 } }, healthCheckTimeoutSeconds: 30 },
    });
    const token = await fleet.api.createEnrollmentToken('crash-tests');
    const enrolled = await agent.enroll(proxy.url, token, { id: 'crash-cam-1' });
    expect(enrolled.code).toBe(0);
    await agent.start();
    const first = await uploadNext(100_000, 0);
    await fleet.api.assign(agent.deviceId, MODEL, first.version);
    await fleet.api.waitForReport(agent.deviceId, MODEL, first.version, 'committed');
    running = { version: first.version, sha: sha256(first.bytes) };
  }, 120_000);

  afterAll(async () => {
    if (agent) {
      if (agent.running) await agent.stop();
      await agent.remove();
    }
    await proxy?.close();
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const cases: CrashCase[] = [
    { state: 'downloading', size: 3_000_000, sleepSeconds: 0, throttle: 1_000_000 },
    { state: 'verifying', size: 8_000_000, sleepSeconds: 0, throttle: 0 },
    { state: 'installing', size: 2_000_000, sleepSeconds: 0, throttle: 0 },
    { state: 'activating', size: 1_000_000, sleepSeconds: 0, throttle: 0 },
    { state: 'health-checking', size: 200_000, sleepSeconds: 3, throttle: 0 },
  ];

  it.each(cases)(
    'SIGKILL in $state: the active version stays complete, and after a restart the update finishes',
    async ({ state, size, sleepSeconds, throttle }) => {
      // A short state can slip between two polls of the journal; then the update simply
      // completes and the next attempt tries again with a new version.
      let hit: { version: string; bytes: Buffer; journal: JournalView } | undefined;
      for (let attempt = 1; attempt <= 3 && !hit; attempt++) {
        const next = await uploadNext(size, sleepSeconds);
        proxy.bytesPerSecond = throttle;
        const armed = await agent.armKill(MODEL, next.version, state, 60_000);
        await fleet.api.assign(agent.deviceId, MODEL, next.version);
        const { killed, journal } = await armed.result;
        proxy.bytesPerSecond = 0;
        if (killed && journal?.state === state) {
          hit = { ...next, journal };
          break;
        }
        if (killed) await agent.start(); // killed just after the state: let it finish, then retry
        const done = await fleet.api.waitForReport(agent.deviceId, MODEL, next.version, 'committed', 60_000);
        running = { version: done.activeVersion ?? next.version, sha: sha256(next.bytes) };
      }
      if (!hit) throw new Error(`the agent was never caught in ${state} in 3 attempts:\n${agent.output().slice(-4000)}`);
      const newSha = sha256(hit.bytes);

      // Power is off: whatever `current` points at is a complete version, old or new.
      await expectActiveIsOneOf([running.sha, newSha]);
      expect(hit.journal).toMatchObject({ state, desired: { version: hit.version } });

      await agent.start();
      const done = await fleet.api.waitForReport(agent.deviceId, MODEL, hit.version, 'committed', 60_000);
      expect(done).toMatchObject({ activeVersion: hit.version, previousVersion: running.version, failure: null });
      expect(await expectActiveIsOneOf([newSha])).toBe(newSha);
      const status = await agent.modelStatus(MODEL);
      expect(status).toMatchObject({ activeVersion: hit.version, lastKnownGood: running.version, update: { state: 'committed', inFlight: false } });
      // A crash while the new version may already run counts as a restart there (boot-loop guard).
      if (state === 'activating' || state === 'health-checking') expect(agent.output()).toContain(`recovery ${MODEL}@${hit.version} in ${state}: resume`);
      expect(await agent.partialDownloads()).toEqual(new Map());
      running = { version: hit.version, sha: newSha };
    },
    150_000,
  );

  it('resumes a download cut halfway with a Range request instead of starting over', async () => {
    const next = await uploadNext(30_000_000, 0);
    const length = next.bytes.length;
    proxy.bytesPerSecond = 4_000_000;
    const before = proxy.targetRequests.length;
    await fleet.api.assign(agent.deviceId, MODEL, next.version);
    await waitFor('a third of the download on disk', async () => [...(await agent.partialDownloads()).values()].some((size) => size >= length / 3), 30_000, 50);
    await agent.kill();
    const partial = [...(await agent.partialDownloads()).values()];
    expect(partial).toHaveLength(1);
    const offset = partial[0]!;
    expect(offset).toBeGreaterThanOrEqual(length / 3);
    expect(offset).toBeLessThan(length);

    proxy.bytesPerSecond = 0;
    await agent.start();
    await fleet.api.waitForReport(agent.deviceId, MODEL, next.version, 'committed', 60_000);
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(next.bytes));

    const requests = proxy.targetRequests.slice(before).filter((r) => r.url.includes(`/${next.version}/`));
    // First run: one plain request, cut by the kill. Second run: one request for the rest only.
    expect(requests.map((r) => ({ range: r.range, status: r.status }))).toEqual([
      { range: undefined, status: 200 },
      { range: `bytes=${offset}-`, status: 206 },
    ]);
    expect(requests[1]!.bytes).toBe(length - offset);
    const served = requests.reduce((sum, r) => sum + r.bytes, 0);
    expect(served).toBeLessThan(length * 1.2);

    // The control plane's own request metrics agree: it answered a partial-content request.
    const metrics = await (await fetch(`${fleet.cp.baseUrl}/metrics`)).text();
    const ranged = metrics
      .split('\n')
      .find((l) => l.startsWith('fleetline_http_request_duration_seconds_count') && l.includes('/api/v1/tuf/targets/') && l.includes('status="206"'));
    expect(ranged).toBeDefined();
    expect(Number(ranged!.split(' ').pop())).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
