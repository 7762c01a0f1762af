import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { encodePayload, topics } from '@fleetline/protocol';
import { eventually } from '../../testing/test-app.fixture.js';
import { ExternalBrokerGateway } from './external-broker.gateway.js';
import type { InboundMessage } from './mqtt-gateway.js';

/**
 * Commit before ack on an external broker, against the real Mosquitto on this machine
 * (MQTT_TEST_URL, default mqtt://127.0.0.1:1883): the control plane acknowledges a device message
 * to the broker only once its handler has stored it, so a replica that crashes or cannot store it
 * gets it again on its resumed session (MQTT 5 §4.4) instead of losing it.
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

/** Simulates a crash: the gateway's connections go away without another packet (no PUBACK of what is in flight). */
function crash(gateway: ExternalBrokerGateway): void {
  for (const c of (gateway as unknown as { ingestClients?: MqttClient[] }).ingestClients ?? []) c.end(true);
  (gateway as unknown as { client?: MqttClient }).client?.end(true);
}

run('ExternalBrokerGateway acknowledges only what is stored (Mosquitto)', () => {
  const gateways: ExternalBrokerGateway[] = [];
  const devices: MqttClient[] = [];

  function gateway(sessionId: string, ingestConcurrency = 2): ExternalBrokerGateway {
    const g = new ExternalBrokerGateway({ url: brokerUrl, sessionId, ingestConcurrency });
    gateways.push(g);
    return g;
  }

  async function device(): Promise<{ id: string; client: MqttClient }> {
    const id = `extack-${randomBytes(4).toString('hex')}`;
    const client = await mqtt.connectAsync(brokerUrl, { clientId: id, protocolVersion: 4 });
    devices.push(client);
    return { id, client };
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.endAsync(true)));
    await Promise.all(gateways.splice(0).map((g) => g.stop().catch(() => undefined)));
  });

  it('holds the acknowledgement until the handler has stored the message: a crash before that loses nothing', async () => {
    const session = `s${randomBytes(4).toString('hex')}`;
    const first = gateway(session, 1);
    let entered = 0;
    await first.subscribe(topics.fleetFilter('telemetry'), () => {
      entered++;
      return new Promise<void>(() => undefined); // the database never answers
    });
    await first.start();
    const { id, client } = await device();
    await client.publishAsync(topics.telemetry(id), encodePayload({ v: 1, seq: 1 }), { qos: 1 });
    await eventually(() => (entered > 0 ? true : undefined), 10_000, 'message handed to the first replica');
    crash(first);

    // The same replica restarts (same session name): the broker delivers what was never acknowledged.
    const stored: InboundMessage[] = [];
    const second = gateway(session, 1);
    await second.subscribe(topics.fleetFilter('telemetry'), async (m) => void stored.push(m));
    await second.start();
    const mine = () => stored.filter((m) => m.topic === topics.telemetry(id));
    await eventually(() => (mine().length > 0 ? true : undefined), 10_000, 'redelivery after the crash');
    expect(JSON.parse(mine()[0]!.payload.toString())).toEqual({ v: 1, seq: 1 });
  });

  it('does not acknowledge a message its handler could not store, and stores it when the broker delivers it again', async () => {
    const g = gateway(`s${randomBytes(4).toString('hex')}`, 2);
    const stored: number[] = [];
    let failures = 0;
    await g.subscribe(topics.fleetFilter('reported'), async (m) => {
      const { seq } = JSON.parse(m.payload.toString()) as { seq: number };
      if (seq === 1 && failures === 0) {
        failures++;
        throw new Error('database unavailable');
      }
      stored.push(seq);
    });
    await g.start();
    const { id, client } = await device();
    for (let seq = 0; seq < 4; seq++) await client.publishAsync(topics.reported(id), encodePayload({ v: 1, seq }), { qos: 1 });
    await eventually(() => (stored.includes(1) && stored.length >= 4 ? true : undefined), 15_000, 'every report stored');
    expect(failures).toBe(1);
    expect(g.notStored).toBe(1);
    expect([...new Set(stored)].sort()).toEqual([0, 1, 2, 3]);
  });

  it('handles at most ingestConcurrency messages at once and gets the rest as those are stored', async () => {
    const g = gateway(`s${randomBytes(4).toString('hex')}`, 3);
    let inside = 0;
    let most = 0;
    let done = 0;
    let holding = true;
    const held: (() => void)[] = [];
    await g.subscribe(topics.fleetFilter('telemetry'), async () => {
      inside++;
      most = Math.max(most, inside);
      if (holding) await new Promise<void>((resolve) => held.push(resolve));
      inside--;
      done++;
    });
    await g.start();
    const { id, client } = await device();
    await Promise.all(Array.from({ length: 9 }, (_, seq) => client.publishAsync(topics.telemetry(id), encodePayload({ v: 1, seq }), { qos: 1 })));
    await eventually(() => (inside === 3 ? true : undefined), 10_000, 'three messages in flight');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inside).toBe(3);
    holding = false;
    for (const resolve of held) resolve();
    await eventually(() => (done === 9 ? true : undefined), 10_000, 'all nine handled');
    expect(most).toBe(3);
  });
});
