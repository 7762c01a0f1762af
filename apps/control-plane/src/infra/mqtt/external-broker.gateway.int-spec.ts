import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import { type DeviceCredentials, encodePayload, PROTOCOL_VERSION, topics } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { apiClient, eventually, startTestApp, uploadTestVersion } from '../../testing/test-app.fixture.js';
import { ExternalBrokerGateway } from './external-broker.gateway.js';
import type { InboundMessage } from './mqtt-gateway.js';

/**
 * Against the real Mosquitto on this machine (MQTT_TEST_URL, default mqtt://127.0.0.1:1883):
 * the gateway several replicas use past one machine. Ids are random so parallel runs on a shared
 * broker do not see each other's messages.
 */
const brokerUrl = process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';

async function brokerReachable(): Promise<boolean> {
  const client = mqtt.connect(brokerUrl, { connectTimeout: 2000, reconnectPeriod: 0 });
  return new Promise((resolve) => {
    client.once('connect', () => {
      client.end(true);
      resolve(true);
    });
    client.once('error', () => {
      client.end(true);
      resolve(false);
    });
  });
}

const run = process.env['CI'] || (await brokerReachable()) ? describe : describe.skip;

run('ExternalBrokerGateway against Mosquitto', () => {
  const group = `cp${randomBytes(4).toString('hex')}`;
  const deviceId = `ext-${randomBytes(4).toString('hex')}`;
  let a: ExternalBrokerGateway;
  let b: ExternalBrokerGateway;
  const seenA: InboundMessage[] = [];
  const seenB: InboundMessage[] = [];

  beforeAll(async () => {
    a = new ExternalBrokerGateway({ url: brokerUrl, sharedGroup: group });
    b = new ExternalBrokerGateway({ url: brokerUrl, sharedGroup: group });
    // Subscribing before start() is what feature modules do in onModuleInit.
    await a.subscribe(topics.fleetFilter('reported'), (m) => {
      seenA.push(m);
    });
    await b.subscribe(topics.fleetFilter('reported'), (m) => {
      seenB.push(m);
    });
    await a.start();
    await b.start();
  });

  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  it('delivers each device message to exactly one replica of a shared group', async () => {
    const device = await mqtt.connectAsync(brokerUrl, { clientId: deviceId, protocolVersion: 4 });
    const total = 40;
    for (let seq = 0; seq < total; seq++) {
      await device.publishAsync(topics.reported(deviceId), encodePayload({ v: 1, seq }), { qos: 1 });
    }
    await device.endAsync();
    const mine = (list: InboundMessage[]) => list.filter((m) => m.topic === topics.reported(deviceId));
    await eventually(() => (mine(seenA).length + mine(seenB).length >= total ? true : undefined), 10_000, 'all reports');
    expect(mine(seenA).length + mine(seenB).length).toBe(total);
    const seqs = [...mine(seenA), ...mine(seenB)].map((m) => (JSON.parse(m.payload.toString()) as { seq: number }).seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('publishes without retaining: a subscriber gets it live, a later one gets nothing', async () => {
    const live = await mqtt.connectAsync(brokerUrl, { clientId: `${deviceId}-live`, protocolVersion: 4 });
    const received = new Promise<string>((resolve) => live.on('message', (_topic, payload) => resolve(payload.toString())));
    await live.subscribeAsync(topics.desiredAll(deviceId), { qos: 1 });
    await a.publishMany([{ topic: topics.desired(deviceId, 'detector'), payload: encodePayload({ v: 1, version: '1.0.0' }), qos: 1, retain: false }]);
    expect(JSON.parse(await received)).toEqual({ v: 1, version: '1.0.0' });
    await live.endAsync();

    const late = await mqtt.connectAsync(brokerUrl, { clientId: `${deviceId}-late`, protocolVersion: 4 });
    const got: string[] = [];
    late.on('message', (_topic, payload) => got.push(payload.toString()));
    await late.subscribeAsync(topics.desiredAll(deviceId), { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(got).toEqual([]);
    await late.endAsync();
  });
});

run('control plane on an external broker (Mosquitto)', () => {
  it('answers a hello through the broker with the database state, and follows presence by session', async () => {
    const t = await startTestApp('pglite', { MQTT_URL: brokerUrl, MQTT_SHARED_GROUP: `cp${randomBytes(4).toString('hex')}` });
    const api = apiClient(t.baseUrl, t.adminKey);
    const id = `exthello-${randomBytes(4).toString('hex')}`;
    let device: mqtt.MqttClient | undefined;
    try {
      expect((await api.post('/api/v1/models', { name: 'detector' })).status).toBe(201);
      await uploadTestVersion(t, 'detector', '1.0.0');
      const created = await api.post<DeviceCredentials>('/api/v1/devices', { id });
      expect(created.status).toBe(201);
      // Assigned while the device is offline: only the database knows.
      expect((await api.put(`/api/v1/devices/${id}/models/detector`, { version: '1.0.0' })).status).toBe(200);

      const will = {
        topic: topics.presence(id),
        payload: encodePayload({ v: PROTOCOL_VERSION, online: false, session: 'ext-session-1' }),
        qos: 1 as const,
        retain: false,
      };
      device = await mqtt.connectAsync(brokerUrl, { clientId: id, protocolVersion: 4, clean: true, reconnectPeriod: 0, will });
      const desired: string[] = [];
      device.on('message', (_topic, payload) => desired.push(payload.toString()));
      await device.subscribeAsync(topics.desiredAll(id), { qos: 1 });
      await device.publishAsync(
        topics.presence(id),
        encodePayload({ v: PROTOCOL_VERSION, online: true, session: 'ext-session-1', at: new Date().toISOString() }),
        {
          qos: 1,
        },
      );
      const first = await eventually(() => desired[0], 10_000, 'desired state answered to the hello');
      expect(JSON.parse(first)).toMatchObject({ model: 'detector', version: '1.0.0', revision: 1 });
      const db = t.app.get(DataSource);
      const row = async (): Promise<{ online: boolean; presence_session: string | null }> =>
        ((await db.query(`SELECT online, presence_session FROM devices WHERE id = $1`, [id])) as { online: boolean; presence_session: string | null }[])[0]!;
      await eventually(async () => ((await row()).online ? true : undefined), 5000, 'online by hello');
      expect((await row()).presence_session).toBe('ext-session-1');

      // The will of an older session (already replaced) does not end the current one.
      await device.publishAsync(topics.presence(id), encodePayload({ v: PROTOCOL_VERSION, online: false, session: 'ext-session-0' }), { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect((await row()).online).toBe(true);
      // Its own will does (the broker publishes it when the connection is lost).
      device.stream.destroy();
      await eventually(async () => ((await row()).online ? undefined : true), 10_000, 'offline by the last will');
    } finally {
      device?.end(true);
      await t.close();
    }
  });
});
