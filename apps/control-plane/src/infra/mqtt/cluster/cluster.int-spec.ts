import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { DataSource } from 'typeorm';
import { type DeviceCredentials, encodePayload, PROTOCOL_VERSION, topics, type UpdateReport } from '@fleetline/protocol';
import { DeviceIngestMetrics } from '../../../devices/reports/device-ingest-metrics.js';
import { apiClient, type ApiClient, eventually, startTestApp, type TestApp, uploadTestVersion } from '../../../testing/test-app.fixture.js';

/**
 * Two control-plane replicas, each with its own embedded broker, on one PostgreSQL and the real
 * Redis (REDIS_TEST_URL, default redis://127.0.0.1:6379). Clustering needs PostgreSQL: without
 * DATABASE_URL this suite does not apply, and in CI (where DATABASE_URL is always set) it must run.
 */
const redisUrl = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
const hasPostgres = Boolean(process.env['DATABASE_URL']);
if (process.env['CI'] && !hasPostgres) throw new Error('the cluster suite needs DATABASE_URL in CI');
const run = hasPostgres ? describe : describe.skip;

interface Device {
  client: MqttClient;
  /** Payloads received, per topic. */
  box: Map<string, string[]>;
  closed: Promise<void>;
}

run('clustered embedded brokers (two replicas, one PostgreSQL, Redis)', () => {
  let a: TestApp;
  let b: TestApp;
  let api: ApiClient;
  const clients: MqttClient[] = [];
  const creds = new Map<string, DeviceCredentials>();
  const prefix = `cl${randomBytes(3).toString('hex')}`;

  async function device(id: string): Promise<DeviceCredentials> {
    const res = await api.post<DeviceCredentials>('/api/v1/devices', { id });
    expect(res.status).toBe(201);
    creds.set(id, res.body);
    return res.body;
  }

  /** Connects like an agent: clean session, subscribe, then hello. */
  async function connect(replica: TestApp, id: string, session = randomBytes(6).toString('hex')): Promise<Device> {
    const c = creds.get(id) ?? (await device(id));
    const client = await mqtt.connectAsync(replica.mqttUrl, {
      clientId: id,
      username: id,
      password: c.secret,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
    });
    clients.push(client);
    const box = new Map<string, string[]>();
    client.on('message', (topic, payload) => box.set(topic, [...(box.get(topic) ?? []), payload.toString()]));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await client.subscribeAsync([topics.desiredAll(id), topics.commands(id)], { qos: 1 });
    await client.publishAsync(topics.presence(id), encodePayload({ v: PROTOCOL_VERSION, online: true, session, at: new Date().toISOString() }), { qos: 1 });
    return { client, box, closed };
  }

  const row = async (id: string): Promise<{ online: boolean; presence_replica: string | null }> =>
    (
      (await a.app.get(DataSource).query(`SELECT online, presence_replica FROM devices WHERE id = $1`, [id])) as {
        online: boolean;
        presence_replica: string | null;
      }[]
    )[0]!;

  beforeAll(async () => {
    a = await startTestApp('postgres', { REDIS_URL: redisUrl, REPLICA_ID: `${prefix}-a` });
    b = await startTestApp('pglite', { REDIS_URL: redisUrl, REPLICA_ID: `${prefix}-b`, DATABASE_URL: a.databaseUrl!, FLEET_ADMIN_KEY: a.adminKey });
    api = apiClient(a.baseUrl, a.adminKey);
    expect((await api.post('/api/v1/models', { name: 'resnet' })).status).toBe(201);
    await uploadTestVersion(a, 'resnet', '1.0.0');
    await uploadTestVersion(a, 'resnet', '2.0.0');
  });

  afterAll(async () => {
    for (const client of clients) client.end(true);
    await b?.close();
    await a?.close();
  });

  it('hands devices every replica broker, and refuses REDIS_URL next to an external broker', async () => {
    const both = await startTestApp('pglite', {
      REDIS_URL: redisUrl,
      REPLICA_ID: `${prefix}-c`,
      DATABASE_URL: a.databaseUrl!,
      FLEET_ADMIN_KEY: a.adminKey,
      MQTT_PUBLIC_URL: `${a.mqttUrl}, ${b.mqttUrl}`,
    });
    try {
      const res = await apiClient(both.baseUrl, a.adminKey).post<DeviceCredentials>('/api/v1/devices', { id: `${prefix}-urls` });
      expect(res.body.mqtt).toMatchObject({ url: a.mqttUrl, urls: [a.mqttUrl, b.mqttUrl] });
    } finally {
      await both.close();
    }
    await expect(startTestApp('pglite', { REDIS_URL: redisUrl, MQTT_URL: 'mqtt://127.0.0.1:1' })).rejects.toThrow(/REDIS_URL/);
  });

  it('reaches a device on the other replica: live assignments, the hello answer, and an unassignment', async () => {
    const id = `${prefix}-d1`;
    await device(id);
    // Assigned through A while the device is offline; it connects to B and says hello.
    expect((await api.put(`/api/v1/devices/${id}/models/resnet`, { version: '1.0.0' })).status).toBe(200);
    const d = await connect(b, id);
    const first = await eventually(() => d.box.get(topics.desired(id, 'resnet'))?.[0], 5000, 'hello answered by B from the database');
    expect(JSON.parse(first)).toMatchObject({ version: '1.0.0', revision: 1 });
    // Live, from A to the device on B, through Redis.
    expect((await api.put(`/api/v1/devices/${id}/models/resnet`, { version: '2.0.0' })).status).toBe(200);
    const second = await eventually(() => d.box.get(topics.desired(id, 'resnet'))?.[1], 5000, 'live assignment routed from A');
    expect(JSON.parse(second)).toMatchObject({ version: '2.0.0', revision: 2 });
    expect((await api.delete(`/api/v1/devices/${id}/models/resnet`)).status).toBe(204);
    const cleared = await eventually(() => d.box.get(topics.desired(id, 'resnet'))?.[2], 5000, 'clear routed from A');
    expect(JSON.parse(cleared)).toMatchObject({ cleared: true, revision: 3 });
    await eventually(async () => ((await row(id)).presence_replica === `${prefix}-b` ? true : undefined), 5000, 'presence names replica B');
  });

  it('handles a device message once, on the replica holding the connection', async () => {
    const id = `${prefix}-d2`;
    const d = await connect(b, id);
    const ingestA = a.app.get(DeviceIngestMetrics);
    const ingestB = b.app.get(DeviceIngestMetrics);
    const [beforeA, beforeB] = [ingestA.count('accepted', 'reported'), ingestB.count('accepted', 'reported')];
    const report: UpdateReport = {
      v: PROTOCOL_VERSION,
      seq: 1,
      model: 'resnet',
      version: '1.0.0',
      revision: 0,
      state: 'committed',
      activeVersion: '1.0.0',
      previousVersion: null,
      at: new Date().toISOString(),
    };
    await d.client.publishAsync(topics.reported(id), encodePayload(report), { qos: 1 });
    await eventually(() => (ingestB.count('accepted', 'reported') === beforeB + 1 ? true : undefined), 5000, 'ingested by B');
    expect(ingestA.count('accepted', 'reported')).toBe(beforeA);
  });

  it('closes the older connection when a device reconnects to another replica, and stays online', async () => {
    const id = `${prefix}-d3`;
    const onA = await connect(a, id);
    await eventually(async () => ((await row(id)).online ? true : undefined), 5000, 'online on A');
    const onB = await connect(b, id);
    await onA.closed; // MQTT 3.1.1 §3.1.4: the server disconnects the existing client with that id
    await new Promise((resolve) => setTimeout(resolve, 800)); // A's disconnect is flushed by now
    expect(await row(id)).toEqual({ online: true, presence_replica: `${prefix}-b` });
    expect(onB.client.connected).toBe(true);
  });

  it('decommissions a device connected to the other replica', async () => {
    const id = `${prefix}-d4`;
    const d = await connect(b, id);
    expect((await api.delete(`/api/v1/devices/${id}`)).status).toBe(204);
    await d.closed;
    // The answer to the hello (report-inventory) may come first; the decommission, if it arrived before the close, is last.
    const commands = (d.box.get(topics.commands(id)) ?? []).map((c) => JSON.parse(c) as { type: string });
    const decommission = commands.find((c) => c.type === 'decommission');
    if (decommission) expect(decommission).toMatchObject({ v: PROTOCOL_VERSION, type: 'decommission', credential: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('marks offline the devices of a replica that stopped heartbeating', async () => {
    const id = `${prefix}-d5`;
    await device(id);
    const ghost = `${prefix}-ghost`;
    await a.app
      .get(DataSource)
      .query(`UPDATE devices SET online = true, presence_replica = $2, presence_session = 'x', presence_changed_at = now() WHERE id = $1`, [id, ghost]);
    const redis = new Redis(redisUrl);
    try {
      await redis.zadd('fleetline:replicas', Date.now() - 120_000, ghost);
      await eventually(async () => ((await row(id)).online ? undefined : true), 20_000, 'swept offline');
      expect(await redis.zscore('fleetline:replicas', ghost)).toBeNull();
    } finally {
      redis.disconnect();
    }
  });
});
