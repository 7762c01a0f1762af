import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { type DesiredModel, LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage, topics, type UpdateReport } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';

/** Prometheus text format: the value of one sample, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found[m[1]!] = m[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

async function scrape(t: TestApp, key?: string): Promise<{ status: number; text: string; contentType: string | null }> {
  const response = await fetch(`${t.baseUrl}/metrics`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: response.status, text: await response.text(), contentType: response.headers.get('content-type') };
}

async function uploadVersion(t: TestApp, model: string, version: string): Promise<void> {
  const form = new FormData();
  form.append('version', version);
  form.append('metadata', JSON.stringify({ runtime: 'simulated' }));
  form.append('file', new Blob([randomBytes(64)]), 'weights.bin');
  const response = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.adminKey}` },
    body: form,
  });
  expect(response.status).toBe(201);
}

/** Scrapes are served fresh in these tests (no fleet-gauge cache between assertions). */
async function withEnv<T>(env: Record<string, string>, run: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await run();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe.each(databaseBackends())('/metrics on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  const clients: MqttClient[] = [];
  const secrets = new Map<string, string>();

  beforeAll(async () => {
    t = await withEnv({ METRICS_FLEET_CACHE_SECONDS: '0' }, () => startTestApp(backend));
    api = apiClient(t.baseUrl, t.adminKey);
    expect((await api.post('/api/v1/models', { name: 'detector' })).status).toBe(201);
    await uploadVersion(t, 'detector', '1.0.0');
    await uploadVersion(t, 'detector', '1.1.0');
    for (const id of ['cam-1', 'cam-2', 'cam-3']) {
      const created = await api.post<{ secret: string }>('/api/v1/devices', { id, tags: { region: 'eu' } });
      expect(created.status).toBe(201);
      secrets.set(id, created.body.secret);
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()));
    await t.close();
  });

  it('is public, in the Prometheus text format, with process metrics from its own registry', async () => {
    const res = await scrape(t);
    expect(res.status).toBe(200);
    expect(res.contentType).toContain('text/plain');
    expect(res.text).toContain('# TYPE fleetline_devices gauge');
    expect(sample(res.text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(res.text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('counts devices by presence, per model version, denials, ingest drops, telemetry and update outcomes', async () => {
    // A refused connection (wrong secret) is a broker denial.
    await expect(
      mqtt.connectAsync(t.mqttUrl, {
        clientId: 'cam-2',
        username: 'cam-2',
        password: 'wrong-secret-wrong-secret-wrong',
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
    ).rejects.toThrow();

    const client = await mqtt.connectAsync(t.mqttUrl, {
      clientId: 'cam-1',
      username: 'cam-1',
      password: secrets.get('cam-1')!,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(client);
    const desired: DesiredModel[] = [];
    client.on('message', (_topic, payload) => {
      if (payload.length > 0) desired.push(JSON.parse(payload.toString()) as DesiredModel);
    });
    await client.subscribeAsync(topics.desiredAll('cam-1'), { qos: 1 });
    await client.publishAsync(topics.presence('cam-1'), JSON.stringify({ v: PROTOCOL_VERSION, online: true, at: new Date().toISOString() }), {
      qos: 1,
    });

    expect((await api.put('/api/v1/devices/cam-1/models/detector', { version: '1.0.0' })).status).toBe(200);
    const assignment = await eventually(() => desired.find((d) => d.version === '1.0.0'), 10_000, 'desired state');
    const report = (seq: number, state: UpdateReport['state']): UpdateReport => ({
      v: PROTOCOL_VERSION,
      seq,
      model: 'detector',
      version: '1.0.0',
      revision: assignment.revision,
      state,
      activeVersion: state === 'committed' ? '1.0.0' : null,
      previousVersion: null,
      at: new Date().toISOString(),
    });
    await client.publishAsync(topics.reported('cam-1'), JSON.stringify(report(1, 'downloading')), { qos: 1 });
    await client.publishAsync(topics.reported('cam-1'), JSON.stringify(report(2, 'committed')), { qos: 1 });
    await client.publishAsync(topics.reported('cam-1'), '{"not":"a report"}', { qos: 1 });
    const end = new Date();
    const sample1: TelemetryMessage = {
      v: PROTOCOL_VERSION,
      seq: 1,
      model: 'detector',
      version: '1.0.0',
      intervalStart: new Date(end.getTime() - 60_000).toISOString(),
      intervalEnd: end.toISOString(),
      count: 10,
      errors: 0,
      latencyBuckets: [10, ...new Array<number>(LATENCY_BUCKET_COUNT - 1).fill(0)],
      latencySumMs: 10,
      predictions: { ok: 10 },
      vitals: {},
      dropped: 3,
    };
    await client.publishAsync(topics.telemetry('cam-1'), JSON.stringify(sample1), { qos: 1 });
    await client.publishAsync(topics.telemetry('cam-1'), 'not json', { qos: 1 });

    const text = await eventually(
      async () => {
        const res = await scrape(t);
        const done =
          sample(res.text, 'fleetline_devices', { presence: 'online' }) === 1 &&
          sample(res.text, 'fleetline_model_version_devices', { model: 'detector', version: '1.0.0' }) === 1 &&
          sample(res.text, 'fleetline_update_outcomes_total', { model: 'detector', state: 'committed', failure_code: 'none' }) === 1 &&
          sample(res.text, 'fleetline_device_messages_total', { stream: 'reported', outcome: 'malformed' }) === 1 &&
          sample(res.text, 'fleetline_telemetry_samples_total', { outcome: 'accepted' }) === 1;
        return done ? res.text : undefined;
      },
      15_000,
      'metrics to reflect the device traffic',
    );

    expect(sample(text, 'fleetline_devices', { presence: 'offline' })).toBe(2);
    expect(sample(text, 'fleetline_devices', { presence: 'decommissioned' })).toBe(0);
    // Non-terminal states are progress, not outcomes.
    expect(sample(text, 'fleetline_update_outcomes_total', { model: 'detector', state: 'downloading' })).toBeUndefined();
    expect(sample(text, 'fleetline_device_messages_total', { stream: 'reported', outcome: 'accepted' })).toBe(2);
    expect(sample(text, 'fleetline_mqtt_connections')).toBe(1);
    expect(sample(text, 'fleetline_mqtt_denials_total', { kind: 'connect' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'fleetline_telemetry_messages_received_total')).toBe(2);
    expect(sample(text, 'fleetline_telemetry_samples_total', { outcome: 'malformed' })).toBe(1);
    expect(sample(text, 'fleetline_telemetry_agent_dropped_total')).toBe(3);
    expect(sample(text, 'fleetline_telemetry_batches_total')).toBeGreaterThanOrEqual(1);
  });

  it('shows rollouts by state and the progress of active rollouts only', async () => {
    const created = await api.post<{ id: string }>('/api/v1/rollouts', {
      model: 'detector',
      version: '1.1.0',
      target: { tags: { region: 'eu' } },
      waves: [{ percent: 100, manualApproval: true }],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const active = await eventually(
      async () => {
        const res = await scrape(t);
        const members = ['pending', 'notified', 'downloading', 'installing', 'committed'].reduce(
          (n, state) => n + (sample(res.text, 'fleetline_rollout_devices', { rollout: id, model: 'detector', version: '1.1.0', state }) ?? 0),
          0,
        );
        return members === 3 ? res.text : undefined;
      },
      15_000,
      'rollout progress',
    );
    // Scheduled until the engine's first tick starts it, running afterwards: one active rollout either way.
    expect(['scheduled', 'running'].reduce((n, state) => n + (sample(active, 'fleetline_rollouts', { state }) ?? 0), 0)).toBe(1);

    expect((await api.post(`/api/v1/rollouts/${id}/cancel`)).status).toBe(200);
    const finished = await eventually(
      async () => {
        const res = await scrape(t);
        return sample(res.text, 'fleetline_rollouts', { state: 'cancelled' }) === 1 ? res.text : undefined;
      },
      10_000,
      'cancelled rollout',
    );
    // Finished rollouts drop out of the per-rollout series (bounded cardinality).
    expect(finished).not.toContain(`rollout="${id}"`);
    expect(sample(finished, 'fleetline_rollouts', { state: 'running' })).toBe(0);
  });

  it('times HTTP requests by route pattern and never labels a device id', async () => {
    expect((await api.get('/api/v1/devices/cam-3')).status).toBe(200);
    expect((await api.get('/api/v1/devices/no-such-device')).status).toBe(404);
    await fetch(`${t.baseUrl}/definitely/not/a/route`);
    const { text } = await scrape(t);
    expect(
      sample(text, 'fleetline_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/devices/:id', status: '200' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'fleetline_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/devices/:id', status: '404' }),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'fleetline_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    for (const id of ['cam-1', 'cam-2', 'cam-3', 'no-such-device']) expect(text).not.toContain(`"${id}"`);
  });

  it('shows the PostgreSQL pool of the replica, and nothing on PGlite', async () => {
    const { text } = await scrape(t);
    const inUse = sample(text, 'fleetline_db_pool_connections', { state: 'in_use' });
    if (backend === 'pglite') {
      expect(inUse).toBeUndefined();
      return;
    }
    expect(inUse).toBeGreaterThanOrEqual(0);
    expect((inUse ?? 0) + (sample(text, 'fleetline_db_pool_connections', { state: 'idle' }) ?? 0)).toBeGreaterThan(0);
    expect(sample(text, 'fleetline_db_pool_connections', { state: 'waiting' })).toBeGreaterThanOrEqual(0);
  });
});
