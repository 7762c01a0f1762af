import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { WebSocket } from 'ws';
import { DataSource } from 'typeorm';
import {
  credentialBindingOf,
  type DesiredModel,
  type DeviceCredentials,
  encodePayload,
  PROTOCOL_VERSION,
  topics,
  type UpdateReport,
} from '@fleetline/protocol';
import { hashSecret } from '../access/secret.js';
import { EmbeddedBrokerGateway } from '../infra/mqtt/embedded-broker.gateway.js';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp, uploadTestVersion } from '../testing/test-app.fixture.js';
import { DeviceIngestMetrics } from './reports/device-ingest-metrics.js';

const MAX_PACKET = 4096;
const DRAIN_TIMEOUT_MS = 1000;

type ConnectResult = { ok: true; client: MqttClient } | { ok: false; code: number | undefined };

/** Connects a real mqtt.js client (MQTT 3.1.1) and answers how the broker took it. */
function connect(url: string, options: IClientOptions): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, clean: true, ...options });
    client.once('connect', () => resolve({ ok: true, client }));
    client.once('error', (err: Error & { code?: number }) => {
      client.end(true);
      resolve({ ok: false, code: err.code });
    });
  });
}

async function connectDevice(url: string, credentials: Pick<DeviceCredentials, 'deviceId' | 'secret'>, options: IClientOptions = {}): Promise<MqttClient> {
  const result = await connect(url, { clientId: credentials.deviceId, username: credentials.deviceId, password: credentials.secret, ...options });
  if (!result.ok) throw new Error(`device ${credentials.deviceId} could not connect: ${result.code}`);
  return result.client;
}

/** What an agent does once its SUBSCRIBE is acknowledged: say hello (presence online, with a session id). */
async function hello(client: MqttClient, id: string, session = 'session-0001'): Promise<void> {
  await client.publishAsync(topics.presence(id), encodePayload({ v: PROTOCOL_VERSION, online: true, session, at: new Date().toISOString() }), { qos: 1 });
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.disconnected || !client.connected ? resolve() : client.once('close', () => resolve())));
}

/** Collects messages per topic for a subscribed client. */
function inbox(client: MqttClient): Map<string, Buffer[]> {
  const box = new Map<string, Buffer[]>();
  client.on('message', (topic, payload) => {
    const list = box.get(topic) ?? [];
    list.push(payload);
    box.set(topic, list);
  });
  return box;
}

function report(seq: number, patch: Partial<UpdateReport> = {}): UpdateReport {
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: 'resnet',
    version: '1.0.0',
    revision: 1,
    state: 'downloading',
    activeVersion: null,
    previousVersion: null,
    at: new Date().toISOString(),
    ...patch,
  };
}

describe.each(databaseBackends())('devices over MQTT on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  let broker: EmbeddedBrokerGateway;
  let metrics: DeviceIngestMetrics;
  const clients: MqttClient[] = [];
  const creds = new Map<string, DeviceCredentials>();

  async function device(id: string): Promise<DeviceCredentials> {
    const res = await api.post<DeviceCredentials>('/api/v1/devices', { id });
    expect(res.status).toBe(201);
    creds.set(id, res.body);
    return res.body;
  }

  async function online(id: string, options: IClientOptions = {}): Promise<MqttClient> {
    const client = await connectDevice(t.mqttUrl, creds.get(id) ?? (await device(id)), options);
    clients.push(client);
    return client;
  }

  async function modelState(id: string, model = 'resnet'): Promise<Record<string, unknown> | undefined> {
    const res = await api.get<{ models: (Record<string, unknown> & { model: string })[] }>(`/api/v1/devices/${id}`);
    return res.body.models.find((m) => m.model === model);
  }

  beforeAll(async () => {
    t = await startTestApp(backend, { MQTT_MAX_PACKET_BYTES: String(MAX_PACKET), MQTT_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), MQTT_WS_PORT: '0' });
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    broker = t.app.get(MqttGateway) as EmbeddedBrokerGateway;
    metrics = t.app.get(DeviceIngestMetrics);
    expect((await api.post('/api/v1/models', { name: 'resnet' })).status).toBe(201);
    await uploadTestVersion(t, 'resnet', '1.0.0');
    await uploadTestVersion(t, 'resnet', '2.0.0');
  });
  afterAll(async () => {
    for (const client of clients) client.end(true);
    await t.close();
  });

  describe('authentication', () => {
    it('lets a device in with its own secret only', async () => {
      const c = await device('auth-1');
      const good = await connect(t.mqttUrl, { clientId: 'auth-1', username: 'auth-1', password: c.secret });
      expect(good.ok).toBe(true);
      if (good.ok) clients.push(good.client);

      expect(await connect(t.mqttUrl, { clientId: 'auth-1', username: 'auth-1', password: 'wrong' })).toEqual({ ok: false, code: 4 });
      expect(await connect(t.mqttUrl, { clientId: 'auth-1', username: 'auth-1' })).toEqual({ ok: false, code: 4 });
      expect(await connect(t.mqttUrl, { clientId: 'nobody', username: 'nobody', password: c.secret })).toEqual({ ok: false, code: 4 });
      // Username must equal the client id: one device's secret cannot open a session under another id.
      expect(await connect(t.mqttUrl, { clientId: 'auth-1', username: 'auth-2', password: c.secret })).toEqual({ ok: false, code: 4 });
      await device('auth-2');
      expect(await connect(t.mqttUrl, { clientId: 'auth-2', username: 'auth-2', password: c.secret })).toEqual({ ok: false, code: 4 });
    });

    it('refuses a persistent session: the broker keeps nothing for a device between connections', async () => {
      const c = await device('sess-1');
      const before = broker.metrics.count('connect');
      expect(await connect(t.mqttUrl, { clientId: 'sess-1', username: 'sess-1', password: c.secret, clean: false })).toEqual({ ok: false, code: 5 });
      expect(broker.metrics.count('connect')).toBe(before + 1);
      expect(broker.metrics.lastDenial?.reason).toContain('persistent sessions');
    });

    it("refuses a last will on another device's topic at CONNECT", async () => {
      const c = await device('will-1');
      const res = await connect(t.mqttUrl, {
        clientId: 'will-1',
        username: 'will-1',
        password: c.secret,
        will: { topic: topics.presence('auth-1'), payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1, retain: true },
      });
      expect(res).toEqual({ ok: false, code: 5 });
      const desiredWill = await connect(t.mqttUrl, {
        clientId: 'will-1',
        username: 'will-1',
        password: c.secret,
        will: { topic: topics.desired('will-1', 'resnet'), payload: Buffer.from('{}'), qos: 1, retain: true },
      });
      expect(desiredWill).toEqual({ ok: false, code: 5 });
      // Its own presence, but retained: the broker would keep a message per device.
      const retainedWill = await connect(t.mqttUrl, {
        clientId: 'will-1',
        username: 'will-1',
        password: c.secret,
        will: { topic: topics.presence('will-1'), payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1, retain: true },
      });
      expect(retainedWill).toEqual({ ok: false, code: 5 });
      expect(broker.metrics.lastDenial?.reason).toBe('a last will must not be retained');
    });
  });

  describe('topic ACL', () => {
    it("closes the connection of a device publishing on another device's topic", async () => {
      await device('acl-victim');
      const client = await online('acl-pub');
      const before = broker.metrics.count('publish');
      const gone = closed(client);
      client.publish(topics.reported('acl-victim'), encodePayload(report(1)), { qos: 1 });
      await gone;
      expect(broker.metrics.count('publish')).toBe(before + 1);
      expect(broker.metrics.lastDenial?.reason).toContain('another device');
    });

    it('closes the connection on any retained message, presence and inventory included', async () => {
      for (const topic of [topics.reported('acl-ret'), topics.telemetry('acl-ret'), topics.presence('acl-ret'), topics.inventory('acl-ret')]) {
        const client = await online('acl-ret');
        const gone = closed(client);
        client.publish(topic, encodePayload(report(1)), { qos: 1, retain: true });
        await gone;
      }
      expect(broker.metrics.lastDenial?.reason).toContain('retained');
    });

    it("answers SUBACK 0x80 for another device's topics, '#' and '$SYS/#', and grants its own", async () => {
      const client = await online('acl-sub');
      // mqtt.js turns a 0x80 return code into an error carrying the SUBACK packet.
      for (const filter of [topics.desiredAll('acl-victim'), '#', '$SYS/#', topics.reported('acl-sub'), topics.commands('acl-victim')]) {
        const code = await client.subscribeAsync(filter, { qos: 1 }).then(
          (granted) => granted.map((g) => g.qos),
          (err: Error & { packet?: { granted?: number[] } }) => err.packet?.granted,
        );
        expect([filter, code]).toEqual([filter, [128]]);
      }
      const granted = await client.subscribeAsync([topics.desiredAll('acl-sub'), topics.commands('acl-sub')], { qos: 1 });
      expect(granted.map((g) => g.qos)).toEqual([1, 1]);
      expect(client.connected).toBe(true);
    });

    it('drops the connection of a client announcing a packet above MQTT_MAX_PACKET_BYTES', async () => {
      const small = await online('big-ok');
      const client = await online('big-1');
      const before = broker.metrics.count('packet-size');
      const gone = closed(client);
      client.publish(topics.telemetry('big-1'), Buffer.alloc(MAX_PACKET + 10, 1), { qos: 0 });
      await gone;
      expect(broker.metrics.count('packet-size')).toBe(before + 1);
      expect(small.connected).toBe(true);
    });

    it('applies the packet limit to MQTT packets over WebSocket, not only to frames', async () => {
      const before = broker.metrics.count('packet-size');
      const ws = new WebSocket(`ws://127.0.0.1:${broker.wsPort()}`, 'mqtt');
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const closedWs = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      // A CONNECT announcing 10 * MAX_PACKET bytes, sent as frames that each fit the frame limit.
      ws.send(Buffer.from([0x10, 0x80 | ((10 * MAX_PACKET) & 0x7f), (10 * MAX_PACKET) >> 7]));
      for (let i = 0; i < 3 && ws.readyState === WebSocket.OPEN; i++) ws.send(Buffer.alloc(MAX_PACKET / 2));
      await closedWs;
      expect(broker.metrics.count('packet-size')).toBe(before + 1);
    });

    it('drops a frozen subscriber after the drain timeout without stalling delivery to others', async () => {
      const frozen = await online('frozen-1');
      await frozen.subscribeAsync(topics.commands('frozen-1'), { qos: 0 });
      // Stop reading the socket: the kernel buffers fill and the broker's writes to it stop draining.
      frozen.stream.unpipe();
      frozen.stream.pause();
      const healthy = await online('healthy-1');
      const box = inbox(healthy);
      await healthy.subscribeAsync(topics.desiredAll('healthy-1'), { qos: 1 });

      const big = Buffer.alloc(64 * 1024, 7);
      const flood = t.app
        .get(MqttGateway)
        .publishMany(Array.from({ length: 600 }, () => ({ topic: topics.commands('frozen-1'), payload: big, qos: 0 as const, retain: false })));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = Date.now();
      expect((await api.put('/api/v1/devices/healthy-1/models/resnet', { version: '1.0.0' })).status).toBe(200);
      await eventually(() => box.get(topics.desired('healthy-1', 'resnet'))?.[0], 5000, 'delivery to the healthy device');
      expect(Date.now() - started).toBeLessThan(DRAIN_TIMEOUT_MS);
      // The broker gives up on the frozen client after the drain timeout (its own paused socket
      // does not notice yet; the broker side and the device record do).
      await eventually(
        async () => ((await api.get<{ online: boolean }>('/api/v1/devices/frozen-1')).body.online ? undefined : true),
        5000,
        'frozen client dropped',
      );
      expect(Date.now() - started).toBeLessThan(DRAIN_TIMEOUT_MS + 3000);
      await flood.catch(() => undefined); // writes to the dropped client fail; none may hang
      frozen.end(true);
      expect(healthy.connected).toBe(true);
    });
  });

  describe('presence', () => {
    it('follows the connections themselves: a presence message does not override them, a replaced session does not end the new one', async () => {
      const isOnline = async (id: string): Promise<boolean> => (await api.get<{ online: boolean }>(`/api/v1/devices/${id}`)).body.online;
      const will = { topic: topics.presence('pres-1'), payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1 as const, retain: false };
      const client = await online('pres-1', { will });
      await eventually(async () => ((await isOnline('pres-1')) ? true : undefined), 5000, 'online after connect');
      const seenAt = (await api.get<{ lastSeenAt: string | null }>('/api/v1/devices/pres-1')).body.lastSeenAt;
      expect(seenAt).not.toBeNull();
      const first = (await db.query(`SELECT presence_session, presence_replica FROM devices WHERE id = 'pres-1'`)) as Record<string, string | null>[];
      expect(first[0]!.presence_session).toMatch(/:1?\d+$/);
      expect(first[0]!.presence_replica).not.toBeNull();

      // The embedded broker sees the connection; what the device says about itself is only its hello.
      await client.publishAsync(topics.presence('pres-1'), encodePayload({ v: PROTOCOL_VERSION, online: false, at: new Date().toISOString() }), { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(await isOnline('pres-1')).toBe(true);

      // Abrupt loss (no DISCONNECT): the broker sees the connection go.
      const gone = closed(client);
      client.stream.destroy();
      await gone;
      await eventually(async () => ((await isOnline('pres-1')) ? undefined : true), 5000, 'offline after connection loss');
      const row = (await db.query(`SELECT presence_changed_at FROM devices WHERE id = 'pres-1'`)) as { presence_changed_at: Date }[];
      expect(row[0]!.presence_changed_at).not.toBeNull();

      // Same id again while the old connection is alive (MQTT 3.1.1 §3.1.4): the old one's end is not the new one's.
      const a = await online('pres-1');
      await eventually(async () => ((await isOnline('pres-1')) ? true : undefined), 5000, 'online again');
      const aGone = closed(a);
      const b = await online('pres-1');
      await aGone;
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(await isOnline('pres-1')).toBe(true);
      expect(b.connected).toBe(true);
    });

    it('counts malformed presence messages and keeps the connection', async () => {
      const client = await online('pres-bad');
      const before = metrics.count('malformed', 'presence');
      await client.publishAsync(topics.presence('pres-bad'), Buffer.from('{"online":"yes"}'), { qos: 1 });
      await eventually(() => (metrics.count('malformed', 'presence') === before + 1 ? true : undefined), 5000, 'malformed presence counted');
      expect(client.connected).toBe(true);
    });
  });

  describe('reports and inventory', () => {
    it('applies reports idempotently: a duplicate seq changes nothing, a stale seq is ignored', async () => {
      const client = await online('rep-1');
      expect((await api.put('/api/v1/devices/rep-1/models/resnet', { version: '1.0.0' })).status).toBe(200);
      const accepted = metrics.count('accepted', 'reported');
      await client.publishAsync(topics.reported('rep-1'), encodePayload(report(5, { state: 'downloading' })), { qos: 1 });
      await eventually(async () => ((await modelState('rep-1'))?.['reportedState'] === 'downloading' ? true : undefined), 5000, 'report applied');

      const duplicates = metrics.count('duplicate', 'reported');
      const stale = metrics.count('stale', 'reported');
      // Same seq again with different content (a redelivery must not be applied twice), then an older seq.
      await client.publishAsync(topics.reported('rep-1'), encodePayload(report(5, { state: 'failed', failure: { code: 'internal', message: 'x' } })), {
        qos: 1,
      });
      await client.publishAsync(topics.reported('rep-1'), encodePayload(report(4, { state: 'committed', activeVersion: '1.0.0' })), { qos: 1 });
      await eventually(
        () => (metrics.count('duplicate', 'reported') === duplicates + 1 && metrics.count('stale', 'reported') === stale + 1 ? true : undefined),
        5000,
        'duplicate and stale counted',
      );
      expect(metrics.count('accepted', 'reported')).toBe(accepted + 1);
      expect(await modelState('rep-1')).toMatchObject({ reportedState: 'downloading', activeVersion: null, failure: null });
      const seq = (await db.query(`SELECT last_report_seq FROM devices WHERE id = 'rep-1'`)) as { last_report_seq: string | number }[];
      expect(Number(seq[0]!.last_report_seq)).toBe(5);

      await client.publishAsync(topics.reported('rep-1'), encodePayload(report(6, { state: 'committed', activeVersion: '1.0.0' })), { qos: 1 });
      await eventually(async () => ((await modelState('rep-1'))?.['reportedState'] === 'committed' ? true : undefined), 5000, 'newer report applied');
      expect(await modelState('rep-1')).toMatchObject({ activeVersion: '1.0.0', reportedVersion: '1.0.0', reportedRevision: 1, desiredVersion: '1.0.0' });
    });

    it('lets a report of an older revision update what runs, not the progress of the newer assignment', async () => {
      const client = await online('rep-2');
      expect((await api.put('/api/v1/devices/rep-2/models/resnet', { version: '1.0.0' })).status).toBe(200);
      const second = await api.put<{ revision: number }>('/api/v1/devices/rep-2/models/resnet', { version: '2.0.0' });
      expect(second.body.revision).toBe(2);
      await client.publishAsync(topics.reported('rep-2'), encodePayload(report(1, { revision: 1, state: 'committed', activeVersion: '1.0.0' })), { qos: 1 });
      await eventually(async () => ((await modelState('rep-2'))?.['activeVersion'] === '1.0.0' ? true : undefined), 5000, 'active version updated');
      expect(await modelState('rep-2')).toMatchObject({ desiredVersion: '2.0.0', desiredRevision: 2, reportedState: null, reportedRevision: null });
    });

    it('drops and counts malformed reports and reports of unknown devices', async () => {
      const client = await online('rep-3');
      const malformed = metrics.count('malformed', 'reported');
      await client.publishAsync(topics.reported('rep-3'), Buffer.from('not json'), { qos: 1 });
      await client.publishAsync(topics.reported('rep-3'), encodePayload({ ...report(1), state: 'exploded' }), { qos: 1 });
      await client.publishAsync(topics.inventory('rep-3'), encodePayload({ v: PROTOCOL_VERSION, seq: 1 }), { qos: 1 });
      await eventually(() => (metrics.count('malformed') >= malformed + 3 ? true : undefined), 5000, 'malformed counted');
      expect(client.connected).toBe(true);

      // Through the broker itself: what an external broker could deliver for a device this control plane does not know.
      const unknown = metrics.count('unknownDevice', 'reported');
      await t.app.get(MqttGateway).publish(topics.reported('ghost-1'), encodePayload(report(1)), { qos: 1, retain: false });
      await eventually(() => (metrics.count('unknownDevice', 'reported') === unknown + 1 ? true : undefined), 5000, 'unknown device counted');
    });

    it('stores inventory and ignores an older one', async () => {
      const client = await online('inv-1');
      const inventory = { hardwareClass: 'jetson', os: 'linux', arch: 'arm64', accelerators: ['cuda'], agentVersion: '0.2.0', runtimes: { onnx: '1.20.0' } };
      await client.publishAsync(topics.inventory('inv-1'), encodePayload({ v: PROTOCOL_VERSION, seq: 3, inventory, at: new Date().toISOString() }), { qos: 1 });
      await eventually(
        async () => ((await api.get<{ hardwareClass: string | null }>('/api/v1/devices/inv-1')).body.hardwareClass === 'jetson' ? true : undefined),
        5000,
        'inventory',
      );
      await client.publishAsync(
        topics.inventory('inv-1'),
        encodePayload({ v: PROTOCOL_VERSION, seq: 2, inventory: { ...inventory, hardwareClass: 'old' }, at: new Date().toISOString() }),
        { qos: 1 },
      );
      await eventually(() => (metrics.count('stale', 'inventory') >= 1 ? true : undefined), 5000, 'stale inventory counted');
      expect((await api.get<{ hardwareClass: string; inventory: unknown }>('/api/v1/devices/inv-1')).body).toMatchObject({
        hardwareClass: 'jetson',
        inventory,
      });
    });
  });

  describe('desired state', () => {
    it('asks a device it holds no inventory for to send one (report-inventory), and only such a device', async () => {
      const client = await online('noinv-1');
      const box = inbox(client);
      await client.subscribeAsync(topics.commands('noinv-1'), { qos: 1 });
      await hello(client, 'noinv-1');
      const asked = await eventually(() => box.get(topics.commands('noinv-1'))?.[0], 5000, 'report-inventory command');
      expect(JSON.parse(asked.toString())).toEqual({ v: PROTOCOL_VERSION, type: 'report-inventory' });
      const inventory = { hardwareClass: 'sim', os: 'linux', arch: 'x64', accelerators: [], agentVersion: '0.2.0', runtimes: {} };
      await client.publishAsync(topics.inventory('noinv-1'), encodePayload({ v: PROTOCOL_VERSION, seq: 0, inventory, at: new Date().toISOString() }), {
        qos: 1,
      });
      // Once stored (the PUBACK waits for the commit), the next hello asks nothing.
      await hello(client, 'noinv-1', 'session-0002');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(box.get(topics.commands('noinv-1'))).toHaveLength(1);
    });

    it('answers every hello with the database state, delivers live changes, and keeps nothing retained', async () => {
      const c = await device('des-1');
      const assigned = await api.put<{ revision: number }>('/api/v1/devices/des-1/models/resnet', { version: '1.0.0', timeoutSeconds: 600 });
      expect(assigned.status).toBe(200);
      expect(assigned.body.revision).toBe(1);

      // Connects after the assignment: subscribing alone brings nothing (no retained messages) ...
      let client = await online('des-1');
      let box = inbox(client);
      await client.subscribeAsync(topics.desiredAll('des-1'), { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(box.get(topics.desired('des-1', 'resnet'))).toBeUndefined();
      // ... the hello does: the answer is what the database says, deadline included.
      await hello(client, 'des-1');
      const first = await eventually(() => box.get(topics.desired('des-1', 'resnet'))?.[0], 5000, 'desired state');
      const desired = JSON.parse(first.toString()) as DesiredModel;
      expect(desired).toMatchObject({ v: PROTOCOL_VERSION, model: 'resnet', version: '1.0.0', revision: 1, action: 'install', timeoutSeconds: 600 });
      expect(desired.artifacts[0]).toMatchObject({ runtime: 'onnx', targetPath: expect.stringContaining('resnet/1.0.0/') });
      // No report stored yet: nothing the device could skip re-stating.
      expect(desired.stored).toBeUndefined();

      // Re-assign while connected (live delivery), then reconnect and say hello: the newest state comes back.
      await api.put('/api/v1/devices/des-1/models/resnet', { version: '2.0.0' });
      await eventually(() => (box.get(topics.desired('des-1', 'resnet'))?.length === 2 ? true : undefined), 5000, 'live update');
      // A live assignment carries no stored report; the next hello's answer does, once one is stored.
      expect((JSON.parse(box.get(topics.desired('des-1', 'resnet'))![1]!.toString()) as DesiredModel).stored).toBeUndefined();
      const committed = report(1, { version: '2.0.0', revision: 2, state: 'committed', activeVersion: '2.0.0', previousVersion: '1.0.0' });
      await client.publishAsync(topics.reported('des-1'), encodePayload(committed), { qos: 1 });
      client.end(true);
      client = await connectDevice(t.mqttUrl, c);
      clients.push(client);
      box = inbox(client);
      await client.subscribeAsync(topics.desiredAll('des-1'), { qos: 1 });
      await hello(client, 'des-1', 'session-0002');
      const again = await eventually(() => box.get(topics.desired('des-1', 'resnet'))?.[0], 5000, 'state after reconnect');
      expect(JSON.parse(again.toString())).toMatchObject({
        version: '2.0.0',
        revision: 2,
        stored: { version: '2.0.0', revision: 2, state: 'committed', activeVersion: '2.0.0', previousVersion: '1.0.0' },
      });

      // Unassign: a clear that carries its revision, live and on the next hello.
      expect((await api.delete('/api/v1/devices/des-1/models/resnet')).status).toBe(204);
      const cleared = await eventually(() => box.get(topics.desired('des-1', 'resnet'))?.[1], 5000, 'clear');
      expect(JSON.parse(cleared.toString())).toMatchObject({ v: PROTOCOL_VERSION, model: 'resnet', revision: 3, cleared: true });
      expect((await api.delete('/api/v1/devices/des-1/models/resnet')).status).toBe(404);
      expect(await modelState('des-1')).toMatchObject({ desiredVersion: null, desiredRevision: 3 });
      await hello(client, 'des-1', 'session-0002');
      const clearedAgain = await eventually(() => box.get(topics.desired('des-1', 'resnet'))?.[2], 5000, 'clear on hello');
      expect(JSON.parse(clearedAgain.toString())).toMatchObject({ revision: 3, cleared: true });

      // The broker holds no retained message at all: every subscription is O(1) whatever the fleet size.
      const retained = await new Promise<number>((resolve) => {
        let n = 0;
        const stream = (broker as unknown as { requireBroker(): { persistence: { createRetainedStream(p: string): NodeJS.ReadableStream } } })
          .requireBroker()
          .persistence.createRetainedStream('#');
        stream.on('data', () => n++);
        stream.on('end', () => resolve(n));
      });
      expect(retained).toBe(0);
    });

    it('sends each device the build that fits its inventory, the same again on hello, and records the build it reports', async () => {
      const form = new FormData();
      form.append('version', '3.0.0');
      form.append(
        'metadata',
        JSON.stringify({
          runtime: 'onnx',
          variants: [
            { name: 'npu-int8', files: ['int8.onnx'], compatibility: { accelerators: ['npu'] } },
            { name: 'cpu-fp32', files: ['fp32.onnx'] },
          ],
        }),
      );
      form.append('file', new Blob([Buffer.from('int8 weights')]), 'int8.onnx');
      form.append('file', new Blob([Buffer.from('fp32 weights')]), 'fp32.onnx');
      const up = await fetch(`${t.baseUrl}/api/v1/models/resnet/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
      expect(up.status).toBe(201);

      const desiredOf = async (id: string, accelerators: string[] | null): Promise<{ live: Buffer; hello: Buffer }> => {
        await device(id);
        let client = await online(id);
        if (accelerators) {
          const inventory = { hardwareClass: 'x86_64', os: 'linux', arch: 'x64', accelerators, agentVersion: '0.3.0', runtimes: { onnx: '1.20.0' } };
          await client.publishAsync(topics.inventory(id), encodePayload({ v: PROTOCOL_VERSION, seq: 1, inventory, at: new Date().toISOString() }), { qos: 1 });
          await eventually(async () => ((await api.get<{ inventory: unknown }>(`/api/v1/devices/${id}`)).body.inventory ? true : undefined), 5000, 'inventory');
        }
        let box = inbox(client);
        await client.subscribeAsync(topics.desiredAll(id), { qos: 1 });
        await api.put(`/api/v1/devices/${id}/models/resnet`, { version: '3.0.0' });
        const live = await eventually(() => box.get(topics.desired(id, 'resnet'))?.[0], 5000, 'live desired state');
        client.end(true);
        client = await online(id);
        box = inbox(client);
        await client.subscribeAsync(topics.desiredAll(id), { qos: 1 });
        await hello(client, id);
        const again = await eventually(() => box.get(topics.desired(id, 'resnet'))?.[0], 5000, 'desired state on hello');
        return { live, hello: again };
      };

      const npu = await desiredOf('var-npu', ['npu']);
      const npuDesired = JSON.parse(npu.live.toString()) as DesiredModel;
      expect(npuDesired.variant).toBe('npu-int8');
      expect(npuDesired.artifacts.map((a) => [a.targetPath, a.variant])).toEqual([['resnet/3.0.0/int8.onnx', 'npu-int8']]);
      expect(npu.hello.toString()).toBe(npu.live.toString());
      const cpu = JSON.parse((await desiredOf('var-cpu', [])).live.toString()) as DesiredModel;
      expect([cpu.variant, cpu.artifacts.map((a) => a.variant)]).toEqual(['cpu-fp32', ['cpu-fp32']]);
      // No inventory yet: every build, in order, unnamed; the agent chooses with the same rule.
      const unknown = JSON.parse((await desiredOf('var-none', null)).live.toString()) as DesiredModel;
      expect([unknown.variant, unknown.artifacts.map((a) => a.variant)]).toEqual([undefined, ['npu-int8', 'cpu-fp32']]);
      expect(await modelState('var-npu')).toMatchObject({ desiredVariant: 'npu-int8', variant: null });
      expect(await modelState('var-none')).toMatchObject({ desiredVariant: null });

      // What the device reports taking is what is recorded.
      const reporter = await online('var-npu');
      await reporter.publishAsync(
        topics.reported('var-npu'),
        encodePayload(report(1, { version: '3.0.0', revision: npuDesired.revision, state: 'downloading', variant: 'npu-int8' })),
        { qos: 1 },
      );
      await eventually(async () => ((await modelState('var-npu'))?.['variant'] === 'npu-int8' ? true : undefined), 5000, 'reported variant');
    });

    it('refuses unknown versions and models, and bad bodies', async () => {
      await device('des-2');
      expect((await api.put('/api/v1/devices/des-2/models/resnet', { version: '9.9.9' })).status).toBe(404);
      expect((await api.put('/api/v1/devices/des-2/models/nothing', { version: '1.0.0' })).status).toBe(404);
      expect((await api.put('/api/v1/devices/des-2/models/resnet', { version: 'latest' })).status).toBe(400);
      expect((await api.put('/api/v1/devices/des-2/models/resnet', { version: 1 })).status).toBe(400);
      expect((await api.put('/api/v1/devices/des-2/models/resnet', { version: '1.0.0', action: 'explode' })).status).toBe(400);
      expect((await api.put('/api/v1/devices/des-2/models/Bad%20Name', { version: '1.0.0' })).status).toBe(400);
      expect(await modelState('des-2')).toBeUndefined();
    });
  });

  describe('decommission', () => {
    it('drops the live connection, refuses reconnects and clears the device state', async () => {
      const c = await device('dec-1');
      expect((await api.put('/api/v1/devices/dec-1/models/resnet', { version: '1.0.0' })).status).toBe(200);
      const client = await online('dec-1');
      const box = inbox(client);
      await client.subscribeAsync(topics.commands('dec-1'), { qos: 1 });
      const gone = closed(client);
      expect((await api.delete('/api/v1/devices/dec-1')).status).toBe(204);
      await gone;
      expect(await connect(t.mqttUrl, { clientId: 'dec-1', username: 'dec-1', password: c.secret })).toEqual({ ok: false, code: 4 });
      const models = (await db.query(`SELECT count(*) AS n FROM device_models WHERE device_id = 'dec-1'`)) as { n: string | number }[];
      expect(Number(models[0]!.n)).toBe(0);
      expect((await api.get<{ online: boolean }>('/api/v1/devices/dec-1')).body.online).toBe(false);
      // The agent was told before the connection went (best effort; it usually arrives).
      // Bound to the credential it was issued for, so it can never wipe a later enrollment of the id.
      const command = box.get(topics.commands('dec-1'))?.[0];
      if (command)
        expect(JSON.parse(command.toString())).toEqual({ v: PROTOCOL_VERSION, type: 'decommission', credential: credentialBindingOf(hashSecret(c.secret)) });

      // Re-provisioned under the same id: the old desired state does not come back.
      const fresh = await device('dec-1');
      const next = await connectDevice(t.mqttUrl, fresh);
      clients.push(next);
      const nextBox = inbox(next);
      await next.subscribeAsync(topics.desiredAll('dec-1'), { qos: 1 });
      await hello(next, 'dec-1');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(nextBox.get(topics.desired('dec-1', 'resnet'))).toBeUndefined();
    });
  });
});
