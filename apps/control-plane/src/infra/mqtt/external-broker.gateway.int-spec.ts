import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import { encodePayload, topics } from '@fleetline/protocol';
import { eventually } from '../../testing/test-app.fixture.js';
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
    await a.subscribe(topics.fleetFilter('reported'), (m) => seenA.push(m));
    await b.subscribe(topics.fleetFilter('reported'), (m) => seenB.push(m));
    await a.start();
    await b.start();
  });

  afterAll(async () => {
    await a.publish(topics.desired(deviceId, 'detector'), Buffer.alloc(0), { qos: 1, retain: true });
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

  it('publishes retained desired state that a device receives when it subscribes later', async () => {
    await a.publishMany([{ topic: topics.desired(deviceId, 'detector'), payload: encodePayload({ v: 1, version: '1.0.0' }), qos: 1, retain: true }]);
    const device = await mqtt.connectAsync(brokerUrl, { clientId: `${deviceId}-late`, protocolVersion: 4 });
    const received = new Promise<string>((resolve) => device.on('message', (_topic, payload) => resolve(payload.toString())));
    await device.subscribeAsync(topics.desiredAll(deviceId), { qos: 1 });
    expect(JSON.parse(await received)).toEqual({ v: 1, version: '1.0.0' });
    await device.endAsync();
  });
});
