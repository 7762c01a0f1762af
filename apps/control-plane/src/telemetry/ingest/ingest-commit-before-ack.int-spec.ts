import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { encodePayload, LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage, topics, type UpdateReport } from '@fleetline/protocol';
import { DeviceModelsRepository } from '../../devices/device-models.repository.js';
import { DevicesRepository } from '../../devices/devices.repository.js';
import { EmbeddedBrokerGateway } from '../../infra/mqtt/embedded-broker.gateway.js';
import { MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import { TelemetryIngestMetrics } from './telemetry-ingest.metrics.js';
import { TelemetryIngestRepository } from './telemetry-ingest.repository.js';

/**
 * Commit before ack on the embedded broker: a device's QoS 1 PUBACK (MQTT 3.1.1 §4.3.2) arrives
 * only once the batch holding its message has committed; a message the database could not store
 * is never acknowledged (the connection is closed, §4.3.2 has no negative PUBACK) and is stored
 * once the device resends it.
 */

function sample(seq: number, end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000)): TelemetryMessage {
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[2] = 10;
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: 'det',
    version: '1.0.0',
    intervalStart: new Date(end.getTime() - 60_000).toISOString(),
    intervalEnd: end.toISOString(),
    count: 10,
    errors: 0,
    latencyBuckets,
    latencySumMs: 50,
    predictions: { cat: 10 },
    vitals: {},
    dropped: 0,
  };
}

function report(seq: number, state: UpdateReport['state'] = 'downloading'): UpdateReport {
  return {
    v: PROTOCOL_VERSION,
    seq,
    model: 'resnet',
    version: '1.0.0',
    revision: 1,
    state,
    activeVersion: null,
    previousVersion: null,
    at: new Date().toISOString(),
  };
}

/** A gate a test opens by hand: the wrapped write waits for it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** A publish whose PUBACK the test can observe: `acked` flips when mqtt.js reports the PUBACK. */
function trackedPublish(client: MqttClient, topic: string, payload: Buffer): { acked: () => boolean; done: Promise<void> } {
  let acked = false;
  const done = client.publishAsync(topic, payload, { qos: 1 }).then(() => {
    acked = true;
  });
  return { acked: () => acked, done };
}

/** Long enough for a PUBACK written before the write to reach the client many times over. */
const SETTLE_MS = 300;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects when `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each(databaseBackends())('commit before ack on the embedded broker (%s)', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  const clients: MqttClient[] = [];

  async function device(id: string, reconnectPeriod = 0): Promise<MqttClient> {
    const created = await api.post<{ secret: string }>('/api/v1/devices', { id });
    expect(created.status).toBe(201);
    const client = await mqtt.connectAsync(t.mqttUrl, {
      clientId: id,
      username: id,
      password: created.body.secret,
      protocolVersion: 4,
      reconnectPeriod,
      clean: true,
    });
    clients.push(client);
    return client;
  }

  async function stored(deviceId: string, seq: number): Promise<boolean> {
    const rows: unknown[] = await db.query(`SELECT 1 FROM telemetry_samples WHERE device_id = $1 AND seq = $2`, [deviceId, seq]);
    return rows.length === 1;
  }

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await t.close();
  });

  it('acknowledges telemetry only after its batch has committed', async () => {
    const client = await device('cba-tel-1');
    const repo = t.app.get(TelemetryIngestRepository);
    const original = repo.writeBatch.bind(repo);
    const held = gate();
    let entered = false;
    let committedAt = 0;
    repo.writeBatch = async (...args) => {
      entered = true;
      await held.wait;
      const result = await original(...args);
      committedAt = performance.now();
      return result;
    };
    try {
      const publish = trackedPublish(client, topics.telemetry('cba-tel-1'), encodePayload(sample(1)));
      await eventually(() => (entered ? true : undefined), 5000, 'batch write started');
      await pause(SETTLE_MS);
      expect(publish.acked()).toBe(false);
      expect(await stored('cba-tel-1', 1)).toBe(false);
      held.open();
      await publish.done;
      const ackedAt = performance.now();
      expect(committedAt).toBeGreaterThan(0);
      expect(ackedAt).toBeGreaterThanOrEqual(committedAt);
      expect(await stored('cba-tel-1', 1)).toBe(true);
    } finally {
      held.open();
      repo.writeBatch = original;
    }
  });

  it('acknowledges reports and inventory only after they are in the database', async () => {
    const client = await device('cba-rep-1');
    const models = t.app.get(DeviceModelsRepository);
    const devices = t.app.get(DevicesRepository);
    const applyReports = models.applyReports.bind(models);
    const applyInventory = devices.applyInventory.bind(devices);
    const held = gate();
    let entered = 0;
    models.applyReports = (async (...args: Parameters<typeof applyReports>) => {
      entered++;
      await held.wait;
      return applyReports(...args);
    }) as typeof models.applyReports;
    devices.applyInventory = (async (...args: Parameters<typeof applyInventory>) => {
      entered++;
      await held.wait;
      return applyInventory(...args);
    }) as typeof devices.applyInventory;
    try {
      const rep = trackedPublish(client, topics.reported('cba-rep-1'), encodePayload(report(7)));
      const inventory = { hardwareClass: 'jetson', os: 'linux', arch: 'arm64', accelerators: [], agentVersion: '0.2.0', runtimes: {} };
      const inv = trackedPublish(
        client,
        topics.inventory('cba-rep-1'),
        encodePayload({ v: PROTOCOL_VERSION, seq: 1, inventory, at: new Date().toISOString() }),
      );
      await eventually(() => (entered >= 1 ? true : undefined), 5000, 'report write started');
      await pause(SETTLE_MS);
      expect(rep.acked()).toBe(false);
      expect(inv.acked()).toBe(false);
      held.open();
      await Promise.all([rep.done, inv.done]);
      const rows: { last_report_seq: string | number; hardware_class: string | null }[] = await db.query(
        `SELECT last_report_seq, hardware_class FROM devices WHERE id = 'cba-rep-1'`,
      );
      expect(Number(rows[0]!.last_report_seq)).toBe(7);
      expect(rows[0]!.hardware_class).toBe('jetson');
    } finally {
      held.open();
      models.applyReports = applyReports;
      devices.applyInventory = applyInventory;
    }
  });

  it('does not acknowledge telemetry the database failed to store; the resent message is stored after recovery', async () => {
    const client = await device('cba-tel-2', 200);
    const repo = t.app.get(TelemetryIngestRepository);
    const metrics = t.app.get(TelemetryIngestMetrics);
    const broker = t.app.get(MqttGateway) as EmbeddedBrokerGateway;
    const original = repo.writeBatch.bind(repo);
    let failures = 0;
    // The database goes away for the first write (a connection error, not a refused row).
    repo.writeBatch = async (...args) => {
      if (failures === 0) {
        failures++;
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      }
      return original(...args);
    };
    const closedOnce = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const notStored = broker.metrics.count('publish');
    const writeFailed = metrics.writeFailed;
    try {
      const publish = trackedPublish(client, topics.telemetry('cba-tel-2'), encodePayload(sample(1)));
      // No negative PUBACK in MQTT 3.1.1: the connection is closed instead.
      await within(closedOnce, 10_000, 'the connection to be closed');
      expect(publish.acked()).toBe(false);
      expect(failures).toBe(1);
      // mqtt.js keeps the unacknowledged publish and resends it after reconnecting (§4.4).
      await within(publish.done, 10_000, 'the resent message to be acknowledged');
      expect(await stored('cba-tel-2', 1)).toBe(true);
      expect(broker.metrics.count('publish')).toBe(notStored + 1);
      expect(metrics.writeFailed).toBe(writeFailed + 1);
    } finally {
      repo.writeBatch = original;
    }
  });

  it('does not acknowledge a report the database failed to store; the resent report is applied after recovery', async () => {
    const client = await device('cba-rep-2', 200);
    const models = t.app.get(DeviceModelsRepository);
    const applyReports = models.applyReports.bind(models);
    let failures = 0;
    models.applyReports = (async (...args: Parameters<typeof applyReports>) => {
      if (failures === 0) {
        failures++;
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      }
      return applyReports(...args);
    }) as typeof models.applyReports;
    const closedOnce = new Promise<void>((resolve) => client.once('close', () => resolve()));
    try {
      const rep = trackedPublish(client, topics.reported('cba-rep-2'), encodePayload(report(3)));
      await within(closedOnce, 10_000, 'the connection to be closed');
      expect(rep.acked()).toBe(false);
      await within(rep.done, 10_000, 'the resent report to be acknowledged');
      const rows: { last_report_seq: string | number }[] = await db.query(`SELECT last_report_seq FROM devices WHERE id = 'cba-rep-2'`);
      expect(Number(rows[0]!.last_report_seq)).toBe(3);
    } finally {
      models.applyReports = applyReports;
    }
  });

  if (backend === 'postgres') {
    it('holds the PUBACK while another session locks the samples table', async () => {
      const client = await device('cba-tel-3');
      const locker = new pg.Client({ connectionString: t.databaseUrl });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        // SHARE conflicts with the ROW EXCLUSIVE lock an INSERT takes: the batch waits for us.
        await locker.query('LOCK TABLE telemetry_samples IN SHARE MODE');
        const publish = trackedPublish(client, topics.telemetry('cba-tel-3'), encodePayload(sample(1)));
        await eventually(
          async () => {
            const waiting: unknown[] = await locker
              .query(`SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'telemetry_samples'::regclass`)
              .then((r) => r.rows);
            return waiting.length > 0 ? true : undefined;
          },
          5000,
          'batch waiting on the lock',
        );
        await pause(SETTLE_MS);
        expect(publish.acked()).toBe(false);
        await locker.query('COMMIT');
        await publish.done;
        expect(await stored('cba-tel-3', 1)).toBe(true);
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end();
      }
    });
  }
});
