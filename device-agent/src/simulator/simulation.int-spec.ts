import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { decodePayload, telemetryMessageSchema, topics, type DesiredModel } from '@fleetline/protocol';
import { TufRepoFixture, type PublishedTarget } from '../testing/tuf-repo.fixture.js';
import { TargetServerFixture } from '../testing/target-server.fixture.js';
import { BrokerFixture } from '../testing/broker.fixture.js';
import { EnrollServerFixture } from '../testing/enroll-server.fixture.js';
import { startSimulation, type SimulationHandle } from './simulation.js';

const TOKEN = 'enroll-token-0123456789';

async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('fleet simulator (in-process devices against a real broker and target server)', () => {
  const credentials = new Map<string, string>();
  const repo = new TufRepoFixture();
  const targets = new TargetServerFixture(repo, credentials);
  const broker = new BrokerFixture(credentials);
  const enrollServer = new EnrollServerFixture({
    token: TOKEN,
    credentials,
    mqttUrl: () => broker.url,
    metadataUrl: () => targets.metadataUrl,
    targetsUrl: () => targets.targetsUrl,
    rootJson: repo.rootJson,
  });
  const published: Record<string, PublishedTarget> = {};
  let sim: SimulationHandle;

  const desired = (version: string, revision: number): DesiredModel => {
    const t = published[version]!;
    return {
      v: 1,
      model: 'detector',
      version,
      revision,
      action: 'install',
      artifacts: [{ targetPath: t.targetPath, sha256: t.sha256, length: t.length, runtime: 'simulated', compatibility: {} }],
      assignedAt: new Date().toISOString(),
    };
  };
  const deviceIds = (): string[] => [...credentials.keys()];

  beforeAll(async () => {
    published['1.0.0'] = repo.addTarget('detector/1.0.0/model.bin', randomBytes(10_000));
    published['1.1.0'] = repo.addTarget('detector/1.1.0/model.bin', randomBytes(10_000));
    await targets.start();
    await broker.start();
    await enrollServer.start();
    sim = startSimulation({
      server: enrollServer.baseUrl,
      token: TOKEN,
      devices: 6,
      workers: 0,
      tags: { site: 'lab' },
      behaviours: ['1.0.0:latencyMs=10,rate=20', '1.1.0:healthFail=1'],
      telemetryIntervalSeconds: 1,
      idPrefix: 'simtest',
      enrollConcurrency: 3,
    });
    await sim.ready;
  });

  afterAll(async () => {
    await sim.stop();
    await enrollServer.stop();
    await broker.close();
    await targets.stop();
  });

  it('enrolls every device with its tags and connects them', async () => {
    expect(sim.stats()).toMatchObject({ devices: 6, enrolled: 6, enrollFailed: 0 });
    expect(enrollServer.enrolled.every((e) => e.tags?.site === 'lab' && e.id?.startsWith('simtest-'))).toBe(true);
    await until(() => sim.stats().connected === 6);
  });

  it('installs an assignment on every device with real downloads, then rolls back a version whose health check fails', async () => {
    for (const id of deviceIds()) await broker.publish(topics.desired(id, 'detector'), JSON.stringify(desired('1.0.0', 1)), true);
    await until(() => sim.stats().active.detector?.['1.0.0'] === 6);
    expect(targets.requests.filter((r) => r.path.includes(published['1.0.0']!.sha256)).length).toBe(6);

    for (const id of deviceIds()) await broker.publish(topics.desired(id, 'detector'), JSON.stringify(desired('1.1.0', 2)), true);
    await until(() => (sim.stats().reports['rolled-back'] ?? 0) === 6);
    const s = sim.stats();
    expect(s.failures['health-check-failed']).toBe(6);
    expect(s.active.detector).toEqual({ '1.0.0': 6 });
  });

  it('emits valid telemetry from simulated inference traffic', async () => {
    await until(() =>
      deviceIds().every((id) => broker.messages(topics.telemetry(id)).some((m) => (JSON.parse(m.payload.toString()) as { count: number }).count > 0)),
    );
    const m = broker.messages(topics.telemetry(deviceIds()[0]!)).find((x) => (JSON.parse(x.payload.toString()) as { count: number }).count > 0)!;
    const t = decodePayload(telemetryMessageSchema, m.payload);
    if (!t.ok) throw new Error(t.error);
    expect(t.value.model).toBe('detector');
    expect(Object.keys(t.value.predictions).length).toBeGreaterThan(0);
  });

  it('spreads enrollment over several servers and holds connections until released, a few at a time', async () => {
    const second = new EnrollServerFixture({
      token: TOKEN,
      credentials,
      mqttUrl: () => broker.url,
      metadataUrl: () => targets.metadataUrl,
      targetsUrl: () => targets.targetsUrl,
      rootJson: repo.rootJson,
    });
    await second.start();
    const held = startSimulation({
      server: [`${enrollServer.baseUrl},${second.baseUrl}`],
      token: TOKEN,
      devices: 6,
      workers: 0,
      idPrefix: 'simheld',
      holdConnections: true,
      connectConcurrency: 2,
      telemetryIntervalSeconds: 0,
    });
    try {
      const before = enrollServer.enrolled.length;
      await held.enrolled;
      expect(held.stats()).toMatchObject({ enrolled: 6, enrollFailed: 0, connected: 0 });
      expect(enrollServer.enrolled.length - before).toBe(3);
      expect(second.enrolled.length).toBe(3);
      // Held: nothing connects until connect().
      await new Promise((r) => setTimeout(r, 300));
      expect(held.stats().connected).toBe(0);
      held.connect();
      await held.ready;
      await until(() => held.stats().connected === 6);
    } finally {
      await held.stop();
      await second.stop();
    }
  });
});
