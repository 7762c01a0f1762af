import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { encodePayload, PROTOCOL_VERSION, topics } from '@fleetline/protocol';
import { apiClient, type ApiClient, eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';

/**
 * Why devices lose their connections is what an SRE needs first when a fleet flaps: each cause is
 * provoked here with a real client and read back from /metrics (fleetline_mqtt_disconnects_total),
 * next to the acknowledgement latency histogram the keepalive depends on.
 */

/** An MQTT 3.1.1 CONNECT (§3.1) with clean session and credentials; nothing is sent after it. */
function connectPacket(clientId: string, password: string, keepaliveSeconds: number): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(keepaliveSeconds);
  // §3.1.2.3 connect flags: user name (0x80), password (0x40), clean session (0x02).
  const variable = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2]), keepalive]);
  const body = Buffer.concat([variable, str(clientId), str(clientId), str(password)]);
  if (body.length > 127) throw new Error('test packet too long for a one-byte remaining length');
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

function rawConnect(url: string, packet: Buffer): Promise<{ socket: Socket; connack: Buffer; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: hostname, port: Number(port) }, () => socket.write(packet));
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('data', (connack) => resolve({ socket, connack, closed }));
    socket.once('error', reject);
  });
}

function mqttConnect(url: string, id: string, password: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 4, clientId: id, username: id, password, reconnectPeriod: 0, clean: true });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

describe('broker disconnect causes and acknowledgement latency (/metrics)', () => {
  let t: TestApp;
  let api: ApiClient;

  async function enroll(id: string): Promise<string> {
    const res = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(res.status).toBe(201);
    return res.body.secret;
  }

  async function metric(name: string): Promise<number> {
    const text = (await api.get<string>('/metrics')).body;
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : Number.NaN;
  }

  beforeAll(async () => {
    t = await startTestApp('pglite');
    api = apiClient(t.baseUrl, t.adminKey);
  });

  afterAll(async () => {
    await t.close();
  });

  it('counts a device that stops sending as keepalive-timeout (MQTT 3.1.1 §3.1.2.10: 1.5 × its keepalive)', async () => {
    const secret = await enroll('dc-silent');
    const before = await metric('fleetline_mqtt_disconnects_total{reason="keepalive-timeout"}');
    const { connack, closed } = await rawConnect(t.mqttUrl, connectPacket('dc-silent', secret, 1));
    expect([...connack]).toEqual([0x20, 2, 0, 0]); // CONNACK, accepted
    await closed; // the broker closes it after 1.5 s of silence
    await eventually(
      async () => ((await metric('fleetline_mqtt_disconnects_total{reason="keepalive-timeout"}')) === before + 1 ? true : undefined),
      10_000,
      'keepalive-timeout counted',
    );
  });

  it('counts a device that disconnects as closed, one replaced by a newer connection as takeover, and one the control plane drops as control-plane', async () => {
    const secret = await enroll('dc-device');
    const count = async (reason: string): Promise<number> => metric(`fleetline_mqtt_disconnects_total{reason="${reason}"}`);
    const start = { closed: await count('closed'), takeover: await count('takeover'), control: await count('control-plane') };

    const first = await mqttConnect(t.mqttUrl, 'dc-device', secret);
    const replaced = new Promise<void>((done) => first.once('close', () => done()));
    const second = await mqttConnect(t.mqttUrl, 'dc-device', secret);
    await replaced;
    await eventually(async () => ((await count('takeover')) === start.takeover + 1 ? true : undefined), 10_000, 'takeover counted');
    await new Promise<void>((done) => second.end(false, {}, () => done()));
    await eventually(async () => ((await count('closed')) === start.closed + 1 ? true : undefined), 10_000, 'closed counted');

    const third = await mqttConnect(t.mqttUrl, 'dc-device', secret);
    const dropped = new Promise<void>((done) => third.once('close', () => done()));
    expect((await api.delete(`/api/v1/devices/dc-device`)).status).toBe(204);
    await dropped;
    third.end(true);
    await eventually(async () => ((await count('control-plane')) === start.control + 1 ? true : undefined), 10_000, 'control-plane counted');
  });

  it('observes each acknowledged publish in fleetline_mqtt_publish_ack_seconds, after it was stored', async () => {
    const secret = await enroll('dc-ack');
    const before = await metric('fleetline_mqtt_publish_ack_seconds_count');
    const client = await mqttConnect(t.mqttUrl, 'dc-ack', secret);
    try {
      await client.publishAsync(topics.presence('dc-ack'), encodePayload({ v: PROTOCOL_VERSION, online: true, session: 'session-1' }), { qos: 1 });
      await client.publishAsync(topics.presence('dc-ack'), encodePayload({ v: PROTOCOL_VERSION, online: true, session: 'session-1' }), { qos: 1 });
      expect(await metric('fleetline_mqtt_publish_ack_seconds_count')).toBeGreaterThanOrEqual(before + 2);
      expect(await metric('fleetline_mqtt_publish_ack_seconds_bucket{le="+Inf"}')).toBe(await metric('fleetline_mqtt_publish_ack_seconds_count'));
    } finally {
      client.end(true);
    }
  });
});
