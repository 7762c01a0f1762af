import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { DataSource } from 'typeorm';
import { type DeviceCredentials, encodePayload, PROTOCOL_VERSION, topics, type UpdateReport } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import { DeviceIngestMetrics } from './device-ingest-metrics.js';

function report(model: string, seq: number, state: UpdateReport['state'], version: string): UpdateReport {
  return {
    v: PROTOCOL_VERSION,
    seq,
    model,
    version,
    revision: 1,
    state,
    activeVersion: state === 'committed' ? version : null,
    previousVersion: null,
    at: new Date().toISOString(),
  };
}

async function upload(t: TestApp, model: string, version: string): Promise<void> {
  const form = new FormData();
  form.append('version', version);
  form.append('file', new Blob([Buffer.from(`weights of ${model} ${version}`)]), 'model.onnx');
  const response = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.adminKey}` },
    body: form,
  });
  if (response.status !== 201) throw new Error(`upload ${model} ${version}: ${response.status} ${await response.text()}`);
}

describe.each(databaseBackends())('report ordering per (device, model) on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let client: MqttClient;

  const modelState = async (model: string): Promise<Record<string, unknown> | undefined> =>
    (await api.get<{ models: (Record<string, unknown> & { model: string })[] }>('/api/v1/devices/two-models')).body.models.find((m) => m.model === model);

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    for (const model of ['resnet', 'bert']) {
      expect((await api.post('/api/v1/models', { name: model })).status).toBe(201);
      await upload(t, model, '1.0.0');
    }
    const created = await api.post<DeviceCredentials>('/api/v1/devices', { id: 'two-models' });
    expect(created.status).toBe(201);
    client = await mqtt.connectAsync(t.mqttUrl, {
      clientId: 'two-models',
      username: 'two-models',
      password: created.body.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
    });
    for (const model of ['resnet', 'bert']) expect((await api.put(`/api/v1/devices/two-models/models/${model}`, { version: '1.0.0' })).status).toBe(200);
  });
  afterAll(async () => {
    await client?.endAsync(true);
    await t.close();
  });

  it('applies an older seq of one model after a newer seq of another, ignoring duplicates and stale reports', async () => {
    const metrics = t.app.get(DeviceIngestMetrics);
    const publish = (r: UpdateReport): Promise<unknown> => client.publishAsync(topics.reported('two-models'), encodePayload(r), { qos: 1 });
    // The agent's seq is one counter for all models: resnet 40, 41 and bert 39, 42 interleave.
    // bert's 42 is applied first (its own batch), then resnet's 40 and 41 arrive.
    await publish(report('bert', 39, 'downloading', '1.0.0'));
    await publish(report('bert', 42, 'committed', '1.0.0'));
    await eventually(async () => ((await modelState('bert'))?.['reportedState'] === 'committed' ? true : undefined), 5000, 'bert committed');

    const accepted = metrics.count('accepted', 'reported');
    const ignored = (): number => metrics.count('duplicate', 'reported') + metrics.count('stale', 'reported');
    const ignoredBefore = ignored();
    await publish(report('resnet', 40, 'installing', '1.0.0'));
    await publish(report('bert', 42, 'committed', '1.0.0')); // QoS 1 redelivery
    await publish(report('resnet', 41, 'committed', '1.0.0'));
    await publish(report('bert', 39, 'downloading', '1.0.0')); // late: older than bert's 42
    await publish(report('resnet', 40, 'installing', '1.0.0')); // redelivered after 41
    await eventually(() => (metrics.count('accepted', 'reported') - accepted >= 2 && ignored() - ignoredBefore >= 3 ? true : undefined), 5000, 'all counted');
    // Once more after everything settled: the redelivered 41 must change nothing.
    await publish(report('resnet', 41, 'failed', '1.0.0'));
    await eventually(() => (ignored() - ignoredBefore >= 4 ? true : undefined), 5000, 'redelivery counted');

    expect(await modelState('resnet')).toMatchObject({ reportedState: 'committed', activeVersion: '1.0.0', failure: null });
    expect(await modelState('bert')).toMatchObject({ reportedState: 'committed', activeVersion: '1.0.0' });
    expect(metrics.count('accepted', 'reported') - accepted).toBe(2);
    const rows = (await t.app.get(DataSource).query(`SELECT model, last_report_seq FROM device_models WHERE device_id = 'two-models' ORDER BY model`)) as {
      model: string;
      last_report_seq: string | number;
    }[];
    expect(rows.map((r) => [r.model, Number(r.last_report_seq)])).toEqual([
      ['bert', 42],
      ['resnet', 41],
    ]);
    const device = (await t.app.get(DataSource).query(`SELECT last_report_seq FROM devices WHERE id = 'two-models'`)) as { last_report_seq: string | number }[];
    expect(Number(device[0]!.last_report_seq)).toBe(42);
  });
});
