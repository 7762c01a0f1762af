import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePayload, encodePayload, telemetryMessageSchema, topics, type DesiredModel, type TelemetryMessage } from '@fleetline/protocol';
import { Agent } from '../agent.js';
import { RuntimeRegistry } from '../runtime/model-runtime.js';
import { simulatedRuntimeFactory } from '../runtime/simulated-runtime.js';
import { agentParts, desiredTarget } from '../testing/agent-options.fixture.js';
import { BrokerFixture } from '../testing/broker.fixture.js';
import { TargetServerFixture } from '../testing/target-server.fixture.js';
import { TufRepoFixture, type PublishedTarget } from '../testing/tuf-repo.fixture.js';
import { Backoff } from '../util/backoff.js';

const DEVICE = 'agent-shadow-1';
const SECRET = 'z'.repeat(40);

/**
 * A shadow on a real agent: the candidate arrives as a desired state of action shadow over MQTT,
 * is downloaded and verified through TUF, parks in `downloaded` while the active version keeps
 * serving, is evaluated on mirrored inputs, and its numbers ride on the active version's telemetry.
 */
describe('Agent shadow evaluation', () => {
  const repo = new TufRepoFixture();
  const targetServer = new TargetServerFixture(repo, new Map([[DEVICE, SECRET]]));
  const broker = new BrokerFixture(new Map([[DEVICE, SECRET]]));
  const targets: Record<string, PublishedTarget> = {};
  let dir: string;
  let agent: Agent;

  const desired = (version: string, revision: number, extra: Partial<DesiredModel> = {}): DesiredModel => {
    const t = targets[version]!;
    return desiredTarget(t, 'clf', version, revision, {
      artifacts: [{ targetPath: t.targetPath, sha256: t.sha256, length: t.length, runtime: 'simulated', compatibility: {} }],
      ...extra,
    });
  };

  const telemetry = (): TelemetryMessage[] =>
    broker.messages(topics.telemetry(DEVICE)).map((m) => {
      const t = decodePayload(telemetryMessageSchema, m.payload);
      if (!t.ok) throw new Error(t.error);
      return t.value;
    });

  beforeAll(async () => {
    targets['1.0.0'] = repo.addTarget('clf/1.0.0/model.sim', randomBytes(2_000));
    targets['2.0.0'] = repo.addTarget('clf/2.0.0/model.sim', randomBytes(2_000));
    await targetServer.start();
    await broker.start();
    dir = await mkdtemp(join(tmpdir(), 'fleet-agent-shadow-'));
    await mkdir(join(dir, 'tuf'));
    await writeFile(join(dir, 'tuf', 'root.json'), repo.rootJson);
    agent = new Agent({
      ...agentParts(dir, { id: DEVICE, secret: SECRET }, { broker, repo, targetServer }),
      runtimes: new RuntimeRegistry().register(simulatedRuntimeFactory((v) => ({ healthFail: 0, ...(v === '2.0.0' ? { disagreement: 0.3 } : {}) }))),
      inventory: { hardwareClass: 'x86_64', os: 'linux', arch: 'x64', accelerators: [], agentVersion: '0.1.0' },
      telemetryIntervalMs: 0,
      mqttBackoff: new Backoff({ baseMs: 50, capMs: 200 }),
      shadowQueue: 10_000,
    });
    await agent.start();
    await broker.waitFor(() => agent.connected);
  });

  afterAll(async () => {
    await agent.stop();
    await broker.close();
    await targetServer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('evaluates the candidate beside the active version without switching, and reports agreement', async () => {
    await agent.reconciler.setDesired('clf', desired('1.0.0', 1));
    await agent.reconciler.settled();
    expect(await agent.activeModels()).toEqual([expect.objectContaining({ version: '1.0.0' })]);

    const directive = desired('2.0.0', 2, { action: 'shadow', shadow: { samplePercent: 100, durationSeconds: 600, maxSamples: 1000 }, rolloutId: 'ro-1' });
    await broker.publish(topics.desired(DEVICE, 'clf'), encodePayload(directive), false);
    await broker.waitFor(() => agent.shadowing('clf'));
    expect(await agent.activeModels()).toEqual([expect.objectContaining({ version: '1.0.0' })]);
    expect((await agent.status()).updates).toEqual([expect.objectContaining({ state: 'downloaded' })]);

    for (let i = 0; i < 1200; i++) agent.recordInference({ model: 'clf', latencyMs: 2, ok: true, label: 'cat', input: { label: 'cat' } });
    await broker.waitFor(() => agent.shadowOf('clf')?.ended === 'samples');
    await agent.emitTelemetry();
    await broker.waitFor(() => telemetry().some((t) => t.shadow !== undefined));

    const [t] = telemetry().filter((m) => m.shadow);
    expect(t).toMatchObject({ version: '1.0.0', count: 1200 });
    expect(t!.shadow).toMatchObject({ version: '2.0.0', rolloutId: 'ro-1', mirrored: 1000, dropped: 0, count: 1000, compared: 1000, ended: true });
    const agreement = t!.shadow!.agreed! / t!.shadow!.compared;
    expect(agreement).toBeGreaterThan(0.65);
    expect(agreement).toBeLessThan(0.75);
    // Over: nothing more is mirrored, the candidate is not active, and it stays staged for an install command.
    expect(agent.shadowOf('clf')).toBeUndefined();
    expect(agent.shadowing('clf')).toBe(false);
    expect(await agent.activeModels()).toEqual([expect.objectContaining({ version: '1.0.0' })]);
  });
});
