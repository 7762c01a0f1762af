import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DeviceCredentials } from '@fleetline/protocol';
import { apiClient, startTestApp, type TestApp, uploadTestVersion } from '../testing/test-app.fixture.js';

async function setUp(t: TestApp): Promise<{ assigned: DeviceCredentials; other: DeviceCredentials }> {
  const api = apiClient(t.baseUrl, t.adminKey);
  await api.post('/api/v1/models', { name: 'detector' });
  await uploadTestVersion(t, 'detector', '1.0.0');
  await uploadTestVersion(t, 'detector', '2.0.0');
  const assigned = (await api.post<DeviceCredentials>('/api/v1/devices', { id: 'cam-assigned' })).body;
  const other = (await api.post<DeviceCredentials>('/api/v1/devices', { id: 'cam-other' })).body;
  expect((await api.put('/api/v1/devices/cam-assigned/models/detector', { version: '1.0.0' })).status).toBe(200);
  return { assigned, other };
}

const download = (t: TestApp, d: DeviceCredentials, version: string) =>
  fetch(`${t.baseUrl}/api/v1/tuf/targets/detector/${version}/model.onnx`, {
    headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}` },
  });

describe('ARTIFACT_ACCESS=assigned (default)', () => {
  let t: TestApp;
  let devices: { assigned: DeviceCredentials; other: DeviceCredentials };

  beforeAll(async () => {
    t = await startTestApp('pglite');
    devices = await setUp(t);
  });

  afterAll(async () => {
    await t.close();
  });

  it('serves a device only the versions it is assigned', async () => {
    const ok = await download(t, devices.assigned, '1.0.0');
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('weights of detector 1.0.0');
    const notAssigned = await download(t, devices.assigned, '2.0.0');
    expect(notAssigned.status).toBe(403);
    expect(((await notAssigned.json()) as { code: string }).code).toBe('target-not-assigned');
    expect((await download(t, devices.other, '1.0.0')).status).toBe(403);
    // Missing targets stay 404.
    expect((await download(t, devices.assigned, '9.9.9')).status).toBe(404);
  });

  it('answers checks that arrive together (one batched lookup) each for its own device and version', async () => {
    const api = apiClient(t.baseUrl, t.adminKey);
    const fleet: { creds: DeviceCredentials; version: string | null }[] = [];
    for (let i = 0; i < 24; i++) {
      const creds = (await api.post<DeviceCredentials>('/api/v1/devices', { id: `cam-batch-${i}` })).body;
      const version = i % 3 === 0 ? null : i % 3 === 1 ? '1.0.0' : '2.0.0';
      if (version) expect((await api.put(`/api/v1/devices/${creds.deviceId}/models/detector`, { version })).status).toBe(200);
      fleet.push({ creds, version });
    }
    // Every device asks for both versions at once: only its own assignment is served.
    const asks = fleet.flatMap((d) => ['1.0.0', '2.0.0'].map((v) => ({ d, v })));
    const statuses = await Promise.all(asks.map(async ({ d, v }) => (await download(t, d.creds, v)).status));
    expect(statuses).toEqual(asks.map(({ d, v }) => (d.version === v ? 200 : 403)));
  });
});

describe('ARTIFACT_ACCESS=fleet', () => {
  let t: TestApp;
  let devices: { assigned: DeviceCredentials; other: DeviceCredentials };

  beforeAll(async () => {
    t = await startTestApp('pglite', { ARTIFACT_ACCESS: 'fleet' });
    devices = await setUp(t);
  });

  afterAll(async () => {
    await t.close();
  });

  it('serves every device every artifact', async () => {
    for (const d of [devices.assigned, devices.other])
      for (const v of ['1.0.0', '2.0.0']) expect([d.deviceId, v, (await download(t, d, v)).status]).toEqual([d.deviceId, v, 200]);
  });
});
