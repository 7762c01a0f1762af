import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  decodePayload,
  encodePayload,
  inventoryMessageSchema,
  LATENCY_BUCKET_COUNT,
  PROTOCOL_VERSION,
  presenceMessageSchema,
  telemetryMessageSchema,
  topics,
  updateReportSchema,
} from '@fleetline/protocol';
import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { DeviceIngestMetrics } from '../../devices/reports/device-ingest-metrics.js';
import { TelemetryIngestMetrics } from '../../telemetry/ingest/telemetry-ingest.metrics.js';
import { TelemetryIngestService } from '../../telemetry/ingest/telemetry-ingest.service.js';
import { apiClient, type ApiClient, eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import { MqttGateway } from './mqtt-gateway.js';

/**
 * Security test suite, part 1 (security issue #11): what an attacker holding one device's
 * credentials (or none) would try against the broker, with real MQTT clients against the embedded
 * broker. Every denial of the access-rules table in docs/protocol.md has a probe here, and a test
 * fails when the table lists a denial no probe covers. Then fuzzed payloads on every device topic:
 * nothing stored, everything counted, the connection handling alive.
 */

const MAX_PACKET = 4096;
const DRAIN_TIMEOUT_MS = 1000;

type ConnectResult = { ok: true; client: MqttClient } | { ok: false; code: number | undefined };

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

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.disconnected || !client.connected ? resolve() : client.once('close', () => resolve())));
}

/** SUBACK return codes of one SUBSCRIBE (mqtt.js turns 0x80 into an error carrying the packet). */
async function suback(client: MqttClient, filter: string): Promise<number[] | undefined> {
  return client.subscribeAsync(filter, { qos: 1 }).then(
    (granted) => granted.map((g) => g.qos),
    (err: Error & { packet?: { granted?: number[] } }) => err.packet?.granted,
  );
}

/** Denial ids of the access-rules table in docs/protocol.md (first column, in backticks). */
function documentedDenials(): string[] {
  const doc = readFileSync(new URL('../../../../../docs/protocol.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Access rules'), doc.indexOf('\n## ', doc.indexOf('## Access rules') + 1));
  return [...section.matchAll(/^\|\s*`([a-z-]+)`\s*\|/gm)].map((m) => m[1]!);
}

describe('broker ACL probes (embedded broker, real MQTT clients)', () => {
  let t: TestApp;
  let api: ApiClient;
  const clients: MqttClient[] = [];
  const secrets = new Map<string, string>();

  async function device(id: string): Promise<string> {
    const known = secrets.get(id);
    if (known) return known;
    const res = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(res.status).toBe(201);
    secrets.set(id, res.body.secret);
    return res.body.secret;
  }

  async function as(id: string, options: IClientOptions = {}): Promise<ConnectResult> {
    const r = await connect(t.mqttUrl, { clientId: id, username: id, password: await device(id), ...options });
    if (r.ok) clients.push(r.client);
    return r;
  }

  async function online(id: string): Promise<MqttClient> {
    const r = await as(id);
    if (!r.ok) throw new Error(`${id} could not connect: ${r.code}`);
    return r.client;
  }

  /** Publishes and expects the broker to close the connection (the publish is refused). */
  async function refusedPublish(id: string, topic: string, retain = false): Promise<void> {
    const client = await online(id);
    const gone = closed(client);
    client.publish(topic, encodePayload({ v: PROTOCOL_VERSION, online: true }), { qos: 1, retain });
    await gone;
    expect(client.connected).toBe(false);
  }

  const PROBES: Record<string, () => Promise<void>> = {
    'connect-unknown-device': async () => {
      const secret = await device('probe-a');
      for (const clientId of ['nobody', 'a/b', '+', '#', '', 'x'.repeat(200)]) {
        const r = await connect(t.mqttUrl, { clientId, username: clientId, password: secret });
        expect([clientId, r.ok]).toEqual([clientId, false]);
        if (!r.ok) expect([2, 4, 5]).toContain(r.code);
      }
    },
    'connect-username': async () => {
      const secret = await device('probe-a');
      await device('probe-b');
      expect(await connect(t.mqttUrl, { clientId: 'probe-b', username: 'probe-a', password: secret })).toEqual({ ok: false, code: 4 });
      expect(await connect(t.mqttUrl, { clientId: 'probe-a', username: 'probe-b', password: secret })).toEqual({ ok: false, code: 4 });
    },
    'connect-password': async () => {
      await device('probe-a');
      expect(await connect(t.mqttUrl, { clientId: 'probe-a', username: 'probe-a', password: 'wrong' })).toEqual({ ok: false, code: 4 });
      expect(await connect(t.mqttUrl, { clientId: 'probe-a', username: 'probe-a' })).toEqual({ ok: false, code: 4 });
      expect(await connect(t.mqttUrl, { clientId: 'probe-a', username: 'probe-a', password: await device('probe-b') })).toEqual({ ok: false, code: 4 });
    },
    'connect-persistent': async () => {
      expect(await as('probe-a', { clean: false })).toEqual({ ok: false, code: 5 });
    },
    'will-topic': async () => {
      await device('probe-b');
      for (const topic of [topics.presence('probe-b'), topics.desired('probe-a', 'm'), topics.telemetry('probe-a'), '#', '$SYS/x']) {
        const r = await as('probe-a', { will: { topic, payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1, retain: false } });
        expect([topic, r]).toEqual([topic, { ok: false, code: 5 }]);
      }
    },
    'will-retained': async () => {
      const r = await as('probe-a', {
        will: { topic: topics.presence('probe-a'), payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1, retain: true },
      });
      expect(r).toEqual({ ok: false, code: 5 });
    },
    'publish-other-device': async () => {
      await device('probe-b');
      for (const topic of [topics.reported('probe-b'), topics.telemetry('probe-b'), topics.presence('probe-b'), topics.inventory('probe-b')]) {
        await refusedPublish('probe-a', topic);
      }
    },
    'publish-downlink': async () => {
      for (const topic of [topics.desired('probe-a', 'm'), topics.commands('probe-a'), 'fleet/v1/devices', '$SYS/broker', 'anything/else']) {
        await refusedPublish('probe-a', topic);
      }
    },
    'publish-retained': async () => {
      for (const topic of [topics.reported('probe-a'), topics.telemetry('probe-a'), topics.presence('probe-a'), topics.inventory('probe-a')]) {
        await refusedPublish('probe-a', topic, true);
      }
    },
    'subscribe-other-device': async () => {
      const client = await online('probe-a');
      for (const filter of [topics.desiredAll('probe-b'), topics.desired('probe-b', 'm'), topics.commands('probe-b')]) {
        expect([filter, await suback(client, filter)]).toEqual([filter, [0x80]]);
      }
      expect(client.connected).toBe(true);
    },
    'subscribe-wildcard': async () => {
      const client = await online('probe-a');
      for (const filter of ['#', '+/#', 'fleet/#', 'fleet/v1/devices/+/reported', 'fleet/v1/devices/+/commands', 'fleet/v1/devices/#']) {
        expect([filter, await suback(client, filter)]).toEqual([filter, [0x80]]);
      }
    },
    'subscribe-sys': async () => {
      const client = await online('probe-a');
      expect(await suback(client, '$SYS/#')).toEqual([0x80]);
      expect(await suback(client, '$SYS/+/clients/connected')).toEqual([0x80]);
    },
    'subscribe-uplink': async () => {
      const client = await online('probe-a');
      for (const filter of [topics.reported('probe-a'), topics.inventory('probe-a'), topics.presence('probe-a'), topics.telemetry('probe-a')]) {
        expect([filter, await suback(client, filter)]).toEqual([filter, [0x80]]);
      }
      // What it may subscribe to is granted on the same connection.
      expect(await suback(client, topics.desiredAll('probe-a'))).toEqual([1]);
      expect(await suback(client, topics.commands('probe-a'))).toEqual([1]);
    },
    'packet-size': async () => {
      const bystander = await online('probe-b');
      const client = await online('probe-a');
      const gone = closed(client);
      client.publish(topics.telemetry('probe-a'), Buffer.alloc(MAX_PACKET + 10, 1), { qos: 0 });
      await gone;
      expect(bystander.connected).toBe(true);
    },
    'slow-consumer': async () => {
      const frozen = await online('probe-frozen');
      await frozen.subscribeAsync(topics.commands('probe-frozen'), { qos: 0 });
      // Stop reading the socket: the broker's writes to it stop draining.
      frozen.stream.unpipe();
      frozen.stream.pause();
      const big = Buffer.alloc(64 * 1024, 7);
      const flood = t.app
        .get(MqttGateway)
        .publishMany(Array.from({ length: 600 }, () => ({ topic: topics.commands('probe-frozen'), payload: big, qos: 0 as const, retain: false })));
      await eventually(
        async () => ((await api.get<{ online: boolean }>('/api/v1/devices/probe-frozen')).body.online ? undefined : true),
        DRAIN_TIMEOUT_MS + 5000,
        'frozen client dropped',
      );
      await flood.catch(() => undefined);
      frozen.end(true);
    },
  };

  beforeAll(async () => {
    t = await startTestApp('pglite', { MQTT_MAX_PACKET_BYTES: String(MAX_PACKET), MQTT_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) });
    api = apiClient(t.baseUrl, t.adminKey);
  });

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t.close();
  });

  it('has a probe for every denial docs/protocol.md lists, and documents every probe', () => {
    const documented = documentedDenials();
    expect(documented.length).toBeGreaterThanOrEqual(10);
    expect(documented.filter((d) => !(d in PROBES))).toEqual([]);
    expect(Object.keys(PROBES).filter((p) => !documented.includes(p))).toEqual([]);
  });

  it.each(Object.keys(PROBES))('denies %s', async (denial) => {
    await PROBES[denial]!();
  });

  it('drops and counts fuzzed payloads on every device topic, stores none of them, keeps handling the device, then stores a valid one', async () => {
    const id = 'probe-fuzz';
    await device(id);
    const db = t.app.get(DataSource);
    const telemetry = t.app.get(TelemetryIngestMetrics);
    const ingest = t.app.get(DeviceIngestMetrics);
    const rows = async () => {
      const r: Record<string, unknown>[] = await db.query(
        `SELECT (SELECT count(*) FROM telemetry_samples) AS samples, (SELECT count(*) FROM telemetry_minute) AS rollups,
                (SELECT count(*) FROM device_models WHERE device_id = $1) AS models,
                (SELECT coalesce(inventory::text, '') || ':' || inventory_seq::text FROM devices WHERE id = $1) AS inventory`,
        [id],
      );
      return r[0];
    };
    const before = await rows();
    const counted = () => ({
      telemetry: telemetry.malformed,
      reported: ingest.count('malformed', 'reported'),
      inventory: ingest.count('malformed', 'inventory'),
      presence: ingest.count('malformed', 'presence'),
    });
    const start = counted();

    // Payloads every decoder refuses: bytes, text, JSON of any shape, objects with v:1 and random fields.
    const hostile = fc.oneof(
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      fc.string({ maxLength: 256 }).map((s) => Buffer.from(s)),
      fc.jsonValue({ maxDepth: 4 }).map((j) => encodePayload(j)),
      fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 8 }).map((o) => encodePayload({ ...o, v: PROTOCOL_VERSION })),
    );
    const streams = [
      { name: 'telemetry', topic: topics.telemetry(id), schema: telemetryMessageSchema },
      { name: 'reported', topic: topics.reported(id), schema: updateReportSchema },
      { name: 'inventory', topic: topics.inventory(id), schema: inventoryMessageSchema },
      { name: 'presence', topic: topics.presence(id), schema: presenceMessageSchema },
    ] as const;
    const N = 50;
    const client = await online(id);
    const sent: Record<string, number> = {};
    for (const s of streams) {
      const payloads = fc
        .sample(hostile, { numRuns: 4 * N, seed: 11 })
        // An empty payload on reported/inventory/presence is ignored uncounted (what clearing a retained message looks like).
        .filter((p) => p.length > 0 && !decodePayload<unknown>(s.schema, p).ok);
      sent[s.name] = Math.min(N, payloads.length);
      // QoS 1: each PUBACK means the control plane took the message (dropped and counted), one after the other.
      for (const p of payloads.slice(0, N)) await client.publishAsync(s.topic, p, { qos: 1 });
    }
    await t.app.get(TelemetryIngestService).flush();
    const end = counted();
    expect(Object.fromEntries(streams.map((s) => [s.name, end[s.name] - start[s.name]]))).toEqual(sent);
    expect(Object.values(sent).every((n) => n > N / 2)).toBe(true);
    expect(client.connected).toBe(true);
    expect(await rows()).toEqual(before);

    // A valid message afterwards is stored.
    const intervalEnd = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000);
    const buckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    buckets[0] = 5;
    await client.publishAsync(
      topics.telemetry(id),
      encodePayload({
        v: PROTOCOL_VERSION,
        seq: 1,
        model: 'fz',
        version: '1.0.0',
        intervalStart: new Date(intervalEnd.getTime() - 60_000).toISOString(),
        intervalEnd: intervalEnd.toISOString(),
        count: 5,
        errors: 0,
        latencyBuckets: buckets,
        latencySumMs: 5,
        predictions: {},
      }),
      { qos: 1 },
    );
    const stored: { n: string | number }[] = await db.query(`SELECT count(*) AS n FROM telemetry_samples WHERE device_id = $1`, [id]);
    expect(Number(stored[0]!.n)).toBe(1);
  });
});
