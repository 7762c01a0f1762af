import { afterAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { type DeviceCredentials, PROTOCOL_VERSION, topics } from '@fleetline/protocol';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { type ControlPlaneProcess, removeDir, startControlPlane } from '../support/control-plane.process.js';
import { type PrivatePostgres, startPrivatePostgres } from '../support/private-postgres.js';
import { metricValue, scrapeMetrics } from '../support/sim-fleet.js';

const BOUND = 2;
const DEVICES = 20;

type Attempt = { client: MqttClient; outcome?: 'connected' | number | string };

/** One CONNECT with the device's own credential; `outcome` becomes 'connected' or the CONNACK return code. */
function connect(url: string, creds: DeviceCredentials): Attempt {
  const client = mqtt.connect(url, {
    clientId: creds.deviceId,
    username: creds.deviceId,
    password: creds.secret,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 60_000,
  });
  const attempt: Attempt = { client };
  client.once('connect', () => (attempt.outcome = 'connected'));
  client.once('error', (err: Error & { code?: number | string }) => (attempt.outcome = err.code ?? err.message));
  return attempt;
}

/** The device's hello (presence online, QoS 1): resolves on its PUBACK, i.e. once it is stored. */
async function hello(client: MqttClient, deviceId: string, n: number): Promise<void> {
  const payload = JSON.stringify({ v: PROTOCOL_VERSION, online: true, session: `hello-session-${n}`, at: new Date().toISOString() });
  await client.publishAsync(topics.presence(deviceId), payload, { qos: 1 });
}

/**
 * Admission control on connect (MQTT_MAX_PENDING_CONNECTS): while the credential checks cannot
 * finish (the devices table is locked, as under a database that cannot keep up with a fleet
 * reconnecting at once), the broker holds at most BOUND CONNECTs and refuses the rest at once with
 * CONNACK 3 "server unavailable" instead of queueing them past the devices' connect timeout. An
 * admitted connection keeps its slot until its hello is stored. Once the checks run again every
 * device gets in: the refused ones retry, real agents by their backoff.
 */
describe('connect admission control', () => {
  let db: PrivatePostgres | undefined;
  let cp: ControlPlaneProcess | undefined;
  let locker: pg.Client | undefined;
  const clients: MqttClient[] = [];

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await locker?.end().catch(() => undefined);
    await cp?.stop();
    await db?.stop();
    if (cp) await removeDir(cp.dataDir);
  });

  it('refuses CONNECTs past the bound with "server unavailable", then admits every device', async () => {
    db = await startPrivatePostgres();
    cp = await startControlPlane({ databaseUrl: db.url, env: { ENROLL_RATE_PER_SECOND: '0', MQTT_MAX_PENDING_CONNECTS: String(BOUND) } });
    const api = new FleetApi(cp.baseUrl, cp.adminKey);
    const token = await api.createEnrollmentToken('admission');
    const creds: DeviceCredentials[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const res = await fetch(`${cp.baseUrl}/api/v1/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, id: `adm-${String(i).padStart(3, '0')}` }),
      });
      expect(res.status).toBe(201);
      creds.push((await res.json()) as DeviceCredentials);
    }

    // The credential checks wait on the lock: nothing that enters authentication can leave it.
    locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE devices IN ACCESS EXCLUSIVE MODE');

    const started = Date.now();
    const attempts = creds.map((c) => connect(cp!.mqttUrl, c));
    clients.push(...attempts.map((a) => a.client));
    await waitFor('all but the admitted CONNECTs answered', async () => attempts.filter((a) => a.outcome !== undefined).length >= DEVICES - BOUND, 20_000, 50);
    const answeredInMs = Date.now() - started;
    // Refused at once (well inside any client's connect timeout), each with return code 3, and the
    // BOUND admitted ones still waiting for their credential check.
    expect(answeredInMs).toBeLessThan(10_000);
    expect(attempts.filter((a) => a.outcome === 3)).toHaveLength(DEVICES - BOUND);
    expect(attempts.filter((a) => a.outcome === undefined)).toHaveLength(BOUND);

    // The database answers again (the lock goes): the admitted two get in, and each refused one
    // gets in when it tries again, as agents do on their backoff (mqtt-link.int-spec.ts).
    await locker.query('COMMIT');
    await waitFor('the admitted CONNECTs connected', async () => attempts.filter((a) => a.outcome === 'connected').length === BOUND, 30_000, 50);
    const refused = attempts.flatMap((a, i) => (a.outcome === 3 ? [i] : []));

    // A connection holds its slot until its hello is stored: connected but silent, the admitted two
    // still fill the bound, so the next CONNECT is refused...
    const early = connect(cp.mqttUrl, creds[refused[0]!]!);
    clients.push(early.client);
    await waitFor('the CONNECT before any hello answered', async () => early.outcome !== undefined, 30_000, 20);
    expect(early.outcome).toBe(3);
    early.client.end(true);
    // ...and once they said hello, the slots are free again.
    const admitted = attempts.filter((a) => a.outcome === 'connected');
    await Promise.all(admitted.map((a, i) => hello(a.client, creds[attempts.indexOf(a)]!.deviceId, i)));
    await waitFor(
      'the slots freed by the hellos',
      async () => metricValue(await scrapeMetrics(cp!.baseUrl), 'fleetline_mqtt_connects_pending', { kind: 'pending' }) === 0,
      30_000,
      50,
    );

    for (const i of refused) {
      // One at a time, as devices on a jittered backoff arrive: each is admitted, and says hello.
      attempts[i]!.client.end(true);
      const retry = connect(cp.mqttUrl, creds[i]!);
      clients.push(retry.client);
      await waitFor(`the retried CONNECT of ${creds[i]!.deviceId} answered`, async () => retry.outcome !== undefined, 30_000, 20);
      expect(retry.outcome).toBe('connected');
      await hello(retry.client, creds[i]!.deviceId, i);
    }

    const metrics = await scrapeMetrics(cp.baseUrl);
    expect(metricValue(metrics, 'fleetline_mqtt_connects_refused_busy_total')).toBeGreaterThanOrEqual(DEVICES - BOUND);
    expect(metricValue(metrics, 'fleetline_mqtt_connects_pending', { kind: 'limit' })).toBe(BOUND);
    expect(metricValue(metrics, 'fleetline_mqtt_connects_pending', { kind: 'peak' })).toBe(BOUND);
    expect(metricValue(metrics, 'fleetline_mqtt_connects_pending', { kind: 'pending' })).toBe(0);
    // A busy refusal is no failed authentication: the source is not rate-limited for it.
    expect(metricValue(metrics, 'fleetline_rate_limited_total', { limit: 'device_auth_mqtt' }) ?? 0).toBe(0);
  }, 240_000);
});
