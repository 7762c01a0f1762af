import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePayload, telemetryMessageSchema, topics, type DesiredModel, type TelemetryMessage } from '@fleetline/protocol';
import { Agent } from './agent.js';
import { commandRuntimeFactory } from './runtime/command-runtime.js';
import { RuntimeRegistry } from './runtime/model-runtime.js';
import { agentParts, desiredTarget } from './testing/agent-options.fixture.js';
import { BrokerFixture } from './testing/broker.fixture.js';
import { TargetServerFixture } from './testing/target-server.fixture.js';
import { TufRepoFixture, type PublishedTarget } from './testing/tuf-repo.fixture.js';
import type { Vitals } from './telemetry/vitals.js';
import { Backoff } from './util/backoff.js';

const DEVICE = 'agent-tel-1';
const SECRET = 'y'.repeat(40);

/**
 * Telemetry across a version switch: the control plane refuses a version's intervals that overlap,
 * so each message must cover only its own build's time, and seqs must follow the intervals even
 * when two telemetry ticks overlap (a slow vitals probe, a store waiting behind a stuck flush).
 */
describe('Agent telemetry across a version switch', () => {
  const repo = new TufRepoFixture();
  const targetServer = new TargetServerFixture(repo, new Map([[DEVICE, SECRET]]));
  const broker = new BrokerFixture(new Map([[DEVICE, SECRET]]));
  const targets: Record<string, PublishedTarget> = {};
  let dir: string;
  let agent: Agent;
  /** What the next vitals probe waits for (none: it answers at once). */
  let vitalsGate: Promise<void> | undefined;

  const desired = (version: string, revision: number): DesiredModel => desiredTarget(targets[version]!, 'resnet', version, revision);

  const telemetry = (): TelemetryMessage[] =>
    broker.messages(topics.telemetry(DEVICE)).map((m) => {
      const t = decodePayload(telemetryMessageSchema, m.payload);
      if (!t.ok) throw new Error(t.error);
      return t.value;
    });

  beforeAll(async () => {
    targets['1.0.0'] = repo.addTarget('resnet/1.0.0/model.onnx', randomBytes(20_000));
    targets['2.0.0'] = repo.addTarget('resnet/2.0.0/model.onnx', randomBytes(20_000));
    await targetServer.start();
    await broker.start();
    dir = await mkdtemp(join(tmpdir(), 'fleet-agent-tel-'));
    await mkdir(join(dir, 'tuf'));
    await writeFile(join(dir, 'tuf', 'root.json'), repo.rootJson);
    agent = new Agent({
      ...agentParts(dir, { id: DEVICE, secret: SECRET }, { broker, repo, targetServer }),
      runtimes: new RuntimeRegistry().register(commandRuntimeFactory({ command: process.execPath, args: ['-e', 'process.exit(0)'] })),
      inventory: { hardwareClass: 'x86_64', os: 'linux', arch: 'x64', accelerators: [], agentVersion: '0.1.0' },
      telemetryIntervalMs: 0,
      mqttBackoff: new Backoff({ baseMs: 50, capMs: 200 }),
      vitals: async (): Promise<Vitals> => {
        const gate = vitalsGate;
        vitalsGate = undefined;
        await gate;
        return { cpuPercent: 1 };
      },
    });
    await agent.start();
  });

  afterAll(async () => {
    await agent.stop();
    await broker.close();
    await targetServer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('splits the interval at the switch and numbers overlapping ticks in the order of their intervals', async () => {
    await agent.reconciler.setDesired('resnet', desired('1.0.0', 1));
    await agent.reconciler.settled();
    expect(agent.recordInference({ model: 'resnet', latencyMs: 3, ok: true })).toBe(true);
    await agent.reconciler.setDesired('resnet', desired('2.0.0', 2));
    await agent.reconciler.settled();
    expect(await agent.activeModels()).toEqual([expect.objectContaining({ version: '2.0.0' })]);
    expect(agent.recordInference({ model: 'resnet', latencyMs: 4, ok: true })).toBe(true);

    // Two ticks that overlap: the first one's vitals probe answers only after the second tick is done.
    let release!: () => void;
    vitalsGate = new Promise<void>((resolve) => (release = resolve));
    const first = agent.emitTelemetry();
    const second = agent.emitTelemetry();
    const sent = await second;
    release();
    const total = sent + (await first);
    await broker.waitFor(() => broker.messages(topics.telemetry(DEVICE)).length >= total);

    const messages = telemetry();
    expect(messages.map((m) => m.seq).sort((a, b) => a - b)).toEqual(messages.map((_, i) => i));
    for (const version of ['1.0.0', '2.0.0']) {
      const stream = messages.filter((m) => m.version === version).sort((a, b) => a.seq - b.seq);
      // In seq order, each interval starts where the one before it ended or later: nothing the control plane would refuse.
      for (let i = 1; i < stream.length; i++) expect(Date.parse(stream[i]!.intervalStart)).toBeGreaterThanOrEqual(Date.parse(stream[i - 1]!.intervalEnd));
      expect(stream.reduce((n, m) => n + m.count, 0)).toBe(1);
    }
    // The old build's interval ends where the new one's begins.
    const oldBuild = messages.filter((m) => m.version === '1.0.0');
    const newBuild = messages.filter((m) => m.version === '2.0.0').sort((a, b) => a.seq - b.seq);
    expect(oldBuild).toHaveLength(1);
    expect(newBuild[0]!.intervalStart).toBe(oldBuild[0]!.intervalEnd);
    expect(newBuild[0]!.seq).toBeGreaterThan(oldBuild[0]!.seq);
  });
});
