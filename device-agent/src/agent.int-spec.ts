import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import {
  decodePayload,
  inventoryMessageSchema,
  presenceMessageSchema,
  telemetryMessageSchema,
  topics,
  updateReportSchema,
  type DesiredModel,
  type UpdateReport,
} from '@fleetline/protocol';
import { TufRepoFixture, type PublishedTarget } from './testing/tuf-repo.fixture.js';
import { TargetServerFixture } from './testing/target-server.fixture.js';
import { agentParts, desiredTarget } from './testing/agent-options.fixture.js';
import { BrokerFixture } from './testing/broker.fixture.js';
import { Agent } from './agent.js';
import { RuntimeRegistry } from './runtime/model-runtime.js';
import { commandRuntimeFactory } from './runtime/command-runtime.js';
import { LocalApiServer } from './local-api/local-api-server.js';
import { Backoff } from './util/backoff.js';
import { AgentClient } from './client/index.js';

const DEVICE = 'agent-int-1';
const SECRET = 'z'.repeat(40);

function sse(url: string, onEvent: (event: string, data: unknown) => void): () => void {
  const req = request(`${url}/v1/events`, (res) => {
    let buf = '';
    res.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let idx: number;
      while ((idx = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        onEvent(event, data ? JSON.parse(data) : null);
      }
    });
  });
  req.end();
  return () => req.destroy();
}

describe('Agent over a real MQTT broker', () => {
  const repo = new TufRepoFixture();
  const targetServer = new TargetServerFixture(repo, new Map([[DEVICE, SECRET]]));
  const broker = new BrokerFixture(new Map([[DEVICE, SECRET]]));
  const targets: Record<string, PublishedTarget> = {};
  let dir: string;
  let agent: Agent;
  let api: LocalApiServer;
  let decommissioned = false;

  const reports = (): UpdateReport[] =>
    broker.messages(topics.reported(DEVICE)).map((m) => {
      const r = decodePayload(updateReportSchema, m.payload);
      if (!r.ok) throw new Error(r.error);
      return r.value;
    });

  const desired = (version: string, revision: number): DesiredModel => desiredTarget(targets[version]!, 'resnet', version, revision);

  beforeAll(async () => {
    targets['1.0.0'] = repo.addTarget('resnet/1.0.0/model.onnx', randomBytes(40_000));
    targets['1.1.0'] = repo.addTarget('resnet/1.1.0/model.onnx', randomBytes(40_000));
    await targetServer.start();
    await broker.start();
    dir = await mkdtemp(join(tmpdir(), 'fleet-agent-'));
    await mkdir(join(dir, 'tuf'));
    await writeFile(join(dir, 'tuf', 'root.json'), repo.rootJson);
    const runtimes = new RuntimeRegistry().register(commandRuntimeFactory({ command: process.execPath, args: ['-e', 'process.exit(0)'] }));
    agent = new Agent({
      ...agentParts(dir, { id: DEVICE, secret: SECRET }, { broker, repo, targetServer }),
      runtimes,
      inventory: { hardwareClass: 'x86_64', os: 'linux', arch: 'x64', accelerators: [], agentVersion: '0.1.0' },
      telemetryIntervalMs: 0,
      mqttBackoff: new Backoff({ baseMs: 50, capMs: 200 }),
      // No control plane answers the hello here: what it would have mentioned is re-stated after this.
      resyncFallbackMs: 300,
      vitals: async () => ({ cpuPercent: 1, memoryRssBytes: 1000 }),
      onDecommission: async () => {
        decommissioned = true;
      },
    });
    api = new LocalApiServer(agent, { port: 0 });
    await api.start();
    await agent.start();
  });

  afterAll(async () => {
    await api.stop();
    await agent.stop();
    await broker.close();
    await targetServer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const hellos = (): { online: boolean; session?: string }[] =>
    broker.messages(topics.presence(DEVICE)).map((m) => {
      const p = decodePayload(presenceMessageSchema, m.payload);
      if (!p.ok) throw new Error(p.error);
      return p.value;
    });

  it('subscribes, then says hello (presence online with a session) and sends its inventory, nothing retained', async () => {
    await broker.waitFor(() => broker.messages(topics.inventory(DEVICE)).length > 0);
    expect(hellos()[0]).toMatchObject({ online: true, session: expect.stringMatching(/^[A-Za-z0-9_-]{8,64}$/) });
    // The hello is the sync request: it must come after the subscription, or the answer is lost.
    const sub = broker.subscriptions.findIndex((s) => s.clientId === DEVICE && s.topic === topics.desiredAll(DEVICE));
    const hello = broker.received.findIndex((m) => m.topic === topics.presence(DEVICE));
    expect(sub).toBeGreaterThanOrEqual(0);
    expect(broker.subscriptions[sub]!.order).toBeLessThan(broker.received[hello]!.order);
    expect(broker.messages(topics.presence(DEVICE))[0]!.retain).toBe(false);
    const inv = broker.messages(topics.inventory(DEVICE))[0]!;
    expect(inv.retain).toBe(false);
    expect(decodePayload(inventoryMessageSchema, inv.payload)).toMatchObject({
      ok: true,
      value: { inventory: { hardwareClass: 'x86_64', runtimes: { command: '1.0.0' } } },
    });
  });

  it('applies a desired state, reports every state, and tells local apps over SSE', async () => {
    const events: Array<{ event: string; data: unknown }> = [];
    const close = sse(api.address!, (event, data) => events.push({ event, data }));
    try {
      await broker.publish(topics.desired(DEVICE, 'resnet'), JSON.stringify(desired('1.0.0', 1)), false);
      await broker.waitFor(() => reports().some((r) => r.state === 'committed'));
      const rs = reports();
      expect(rs.map((r) => r.state)).toEqual(['downloading', 'verifying', 'installing', 'activating', 'health-checking', 'committed']);
      expect(rs.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
      const models = (await (await fetch(`${api.address}/v1/models`)).json()) as { models: Array<{ model: string; version: string; path: string }> };
      expect(models.models).toEqual([expect.objectContaining({ model: 'resnet', version: '1.0.0', path: join(dir, 'models', 'resnet', 'versions', '1.0.0') })]);
      const deadline = Date.now() + 5000;
      while (!events.some((e) => e.event === 'active-changed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(events.find((e) => e.event === 'active-changed')?.data).toMatchObject({ model: 'resnet', version: '1.0.0' });
      expect((await fetch(`${api.address}/v1/models/unknown`)).status).toBe(404);
    } finally {
      close();
    }
  });

  it('turns posted inference results into a telemetry message per model version', async () => {
    const res = await fetch(`${api.address}/v1/inferences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { model: 'resnet', latencyMs: 4, ok: true, label: 'cat' },
        { model: 'resnet', latencyMs: 120, ok: true, label: 'dog' },
        { model: 'resnet', latencyMs: 9, ok: false },
        { model: 'other', latencyMs: 1, ok: true },
      ]),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 3, ignored: 1 });
    expect(
      (await fetch(`${api.address}/v1/inferences`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"resnet"}' })).status,
    ).toBe(400);
    await agent.emitTelemetry();
    await broker.waitFor(() => broker.messages(topics.telemetry(DEVICE)).length > 0);
    const t = decodePayload(telemetryMessageSchema, broker.messages(topics.telemetry(DEVICE))[0]!.payload);
    if (!t.ok) throw new Error(t.error);
    expect(t.value).toMatchObject({
      model: 'resnet',
      version: '1.0.0',
      count: 3,
      errors: 1,
      predictions: { cat: 1, dog: 1 },
      latencySumMs: 133,
      seq: 0,
      dropped: 0,
    });
    expect(t.value.latencyBuckets.reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('serves the app client: model lookup and batched inference results', async () => {
    const client = new AgentClient({ baseUrl: api.address!, flushIntervalMs: 0 });
    expect(await client.model('resnet')).toMatchObject({ model: 'resnet', version: '1.0.0' });
    expect(await client.model('nope')).toBeUndefined();
    client.record({ model: 'resnet', latencyMs: 2, ok: true, score: 0.93 });
    client.record({ model: 'resnet', latencyMs: 3, ok: true, score: 0.12 });
    expect(await client.flush()).toEqual({ accepted: 2, ignored: 0 });
    await client.close();
    expect(await agent.emitTelemetry()).toBe(1);
    await broker.waitFor(() => broker.messages(topics.telemetry(DEVICE)).length > 1);
    const t = decodePayload(telemetryMessageSchema, broker.messages(topics.telemetry(DEVICE))[1]!.payload);
    expect(t).toMatchObject({ ok: true, value: { seq: 1, count: 2, predictions: { 'score:9': 1, 'score:1': 1 } } });
  });

  it('queues reports on disk while offline and flushes them in order on reconnect', async () => {
    await broker.stop();
    const offlineDeadline = Date.now() + 5000;
    while (agent.connected && Date.now() < offlineDeadline) await new Promise((r) => setTimeout(r, 20));
    expect(agent.connected).toBe(false);
    const before = reports().length;
    // An assignment received just before the cut keeps going without the broker.
    await agent.reconciler.setDesired('resnet', desired('1.1.0', 2));
    await agent.reconciler.settled();
    expect((await agent.status()).pendingReports).toBe(6);
    expect(reports().length).toBe(before);

    await broker.start();
    // The six queued transitions, then the re-statement of the current state: nothing answered the
    // hello with the report it stored, so the fallback sends it.
    await broker.waitFor(() => reports().filter((r) => r.version === '1.1.0').length === 7);
    expect(
      reports()
        .filter((r) => r.version === '1.1.0')
        .map((r) => r.state)
        .slice(-2),
    ).toEqual(['committed', 'committed']);
    const seqs = reports().map((r) => r.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i)); // no gaps, no reordering across the outage
    expect(reports().at(-1)).toMatchObject({ version: '1.1.0', state: 'committed', activeVersion: '1.1.0', previousVersion: '1.0.0' });
    const drained = Date.now() + 5000;
    while ((await agent.status()).pendingReports > 0 && Date.now() < drained) await new Promise((r) => setTimeout(r, 20));
    expect((await agent.status()).pendingReports).toBe(0);
    // The reconnect sent a new hello, with a new session; the answer to it may carry an older
    // revision (read before the last assignment): it is stale and ignored.
    await broker.waitFor(() => hellos().filter((h) => h.online).length >= 2);
    const sessions = hellos()
      .filter((h) => h.online)
      .map((h) => h.session);
    expect(new Set(sessions).size).toBe(sessions.length);
    // The inventory did not change, so the reconnection did not send it again.
    expect(broker.messages(topics.inventory(DEVICE))).toHaveLength(1);
    await broker.publish(topics.desired(DEVICE, 'resnet'), JSON.stringify(desired('1.0.0', 1)), false);
    await new Promise((r) => setTimeout(r, 300));
    await agent.reconciler.settled();
    expect(reports().at(-1)).toMatchObject({ version: '1.1.0', state: 'committed' });
    expect(await agent.activeModels()).toEqual([expect.objectContaining({ version: '1.1.0' })]);
  });

  it('sends its inventory again when the control plane asks (report-inventory), unchanged or not', async () => {
    const before = broker.messages(topics.inventory(DEVICE)).length;
    await broker.publish(topics.commands(DEVICE), JSON.stringify({ v: 1, type: 'report-inventory' }), false);
    await broker.waitFor(() => broker.messages(topics.inventory(DEVICE)).length === before + 1);
    const inv = decodePayload(inventoryMessageSchema, broker.messages(topics.inventory(DEVICE)).at(-1)!.payload);
    expect(inv).toMatchObject({ ok: true, value: { inventory: { hardwareClass: 'x86_64' } } });
  });

  it('refuses a malformed desired payload and removes a model whose desired state is cleared', async () => {
    const invalid = agent.invalidMessages;
    await broker.publish(topics.desired(DEVICE, 'resnet'), '{"v":1,"model":"resnet"}', false);
    const deadline = Date.now() + 5000;
    while (agent.invalidMessages === invalid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agent.invalidMessages).toBe(invalid + 1);

    const clear = { v: 1, model: 'resnet', revision: 3, cleared: true, at: new Date().toISOString() };
    await broker.publish(topics.desired(DEVICE, 'resnet'), JSON.stringify(clear), false);
    const removed = Date.now() + 5000;
    while ((await agent.activeModels()).length > 0 && Date.now() < removed) await new Promise((r) => setTimeout(r, 20));
    expect(await agent.activeModels()).toEqual([]);

    // A desired state sent before the clear but delivered after it (revision 2 < 3) cannot bring it back.
    await broker.publish(topics.desired(DEVICE, 'resnet'), JSON.stringify(desired('1.1.0', 2)), false);
    await new Promise((r) => setTimeout(r, 300));
    await agent.reconciler.settled();
    expect(await agent.activeModels()).toEqual([]);
  });

  it('names the session of the connection in its last will', async () => {
    const before = hellos().filter((h) => h.online).length;
    const current = hellos()
      .filter((h) => h.online)
      .at(-1)!.session;
    agent.link.dropConnection();
    await broker.waitFor(() => hellos().some((h) => !h.online && h.session === current));
    await broker.waitFor(() => hellos().filter((h) => h.online).length > before);
    expect(
      hellos()
        .filter((h) => h.online)
        .at(-1)!.session,
    ).not.toBe(current);
  });

  it('refuses a decommission command bound to another credential, and obeys one bound to its own', async () => {
    const invalid = agent.invalidMessages;
    await broker.publish(topics.commands(DEVICE), JSON.stringify({ v: 1, type: 'decommission', credential: '0123456789abcdef' }), false);
    const refused = Date.now() + 5000;
    while (agent.invalidMessages === invalid && Date.now() < refused) await new Promise((r) => setTimeout(r, 20));
    expect(agent.invalidMessages).toBe(invalid + 1);
    expect(decommissioned).toBe(false);
    expect(agent.connected).toBe(true);

    const own = createHash('sha256').update(SECRET).digest('hex').slice(0, 16);
    await broker.publish(topics.commands(DEVICE), JSON.stringify({ v: 1, type: 'decommission', credential: own }), false);
    const deadline = Date.now() + 5000;
    while (!decommissioned && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(decommissioned).toBe(true);
    expect(agent.connected).toBe(false);
  });
});
