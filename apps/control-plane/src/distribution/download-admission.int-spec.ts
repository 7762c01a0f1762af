import { createHash, randomBytes } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { hashSecret } from '../access/secret.js';
import { apiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';

const DEVICE_ID = 'edge-dl-1';
const DEVICE_SECRET = `fld_${randomBytes(32).toString('base64url')}`;
const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
// Bigger than loopback's socket buffers, so a reader that stops reading keeps its stream open.
const ARTIFACT = randomBytes(48 * 1024 * 1024);
const SHA256 = createHash('sha256').update(ARTIFACT).digest('hex');

function metric(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe.each(databaseBackends())('download admission (ARTIFACT_MAX_STREAMS) on %s', (backend) => {
  let t: TestApp;
  const path = `/api/v1/tuf/targets/detector/1.0.0/${SHA256}.model.bin`;

  const scrape = async (): Promise<string> => (await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } })).text();

  /** Starts a download and stops reading it after the headers: its stream stays in flight. */
  function stalledDownload(): Promise<{ req: ClientRequest; res: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const req = request(`${t.baseUrl}${path}`, { headers: { authorization: basic(DEVICE_ID, DEVICE_SECRET) } }, (res) => {
        res.pause();
        resolve({ req, res });
      });
      req.on('error', reject);
      req.end();
    });
  }

  beforeAll(async () => {
    t = await startTestApp(backend, { ARTIFACT_MAX_STREAMS: '1', ARTIFACT_BUSY_RETRY_SECONDS: '3' });
    await t.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, [DEVICE_ID, hashSecret(DEVICE_SECRET)]);
    expect((await apiClient(t.baseUrl, t.adminKey).post('/api/v1/models', { name: 'detector' })).status).toBe(201);
    const form = new FormData();
    form.append('version', '1.0.0');
    form.append('metadata', JSON.stringify({ runtime: 'simulated' }));
    form.append('file', new Blob([ARTIFACT]), 'model.bin');
    const res = await fetch(`${t.baseUrl}/api/v1/models/detector/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
    expect(res.status).toBe(201);
    await t.app.get(DataSource).query(`INSERT INTO device_models (device_id, model, desired_version) VALUES ($1, 'detector', '1.0.0')`, [DEVICE_ID]);
  }, 120_000);
  afterAll(async () => {
    await t.close();
  });

  it('answers 503 with Retry-After past the bound, before credentials are checked, and admits again once a stream ends', async () => {
    const held = await stalledDownload();
    expect(held.res.statusCode).toBe(200);

    const busy = await fetch(`${t.baseUrl}${path}`, { headers: { authorization: basic(DEVICE_ID, DEVICE_SECRET) } });
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('3');
    expect(await busy.json()).toMatchObject({ statusCode: 503, code: 'download-busy', message: expect.stringContaining('ARTIFACT_MAX_STREAMS=1') });
    // Refused before the credential check: a busy replica does not spend it, and says nothing about the credential.
    const wrongSecret = await fetch(`${t.baseUrl}${path}`, { headers: { authorization: basic(DEVICE_ID, 'x'.repeat(40)) } });
    expect(wrongSecret.status).toBe(503);
    await wrongSecret.body?.cancel();
    // Metadata is not bounded: a device can still refresh its trust chain while the bytes wait.
    expect((await fetch(`${t.baseUrl}/api/v1/tuf/metadata/timestamp.json`, { headers: { authorization: basic(DEVICE_ID, DEVICE_SECRET) } })).status).toBe(200);

    const during = await scrape();
    expect(metric(during, 'fleetline_artifact_streams', 'kind="in-flight"')).toBe(1);
    expect(metric(during, 'fleetline_artifact_streams', 'kind="limit"')).toBe(1);
    expect(metric(during, 'fleetline_artifact_streams_refused_busy_total')).toBe(2);

    // The device that held the slot goes away mid-stream: the slot comes back.
    held.req.destroy();
    await eventually(async () => (metric(await scrape(), 'fleetline_artifact_streams', 'kind="in-flight"') === 0 ? true : undefined), 10_000, 'the slot back');
    const ok = await fetch(`${t.baseUrl}${path}`, { headers: { authorization: basic(DEVICE_ID, DEVICE_SECRET) } });
    expect(ok.status).toBe(200);
    expect(
      createHash('sha256')
        .update(Buffer.from(await ok.arrayBuffer()))
        .digest('hex'),
    ).toBe(SHA256);
    // A finished stream gives its slot back too.
    await eventually(async () => (metric(await scrape(), 'fleetline_artifact_streams', 'kind="in-flight"') === 0 ? true : undefined), 10_000, 'the slot back');
    expect(metric(await scrape(), 'fleetline_artifact_streams', 'kind="peak"')).toBe(1);
  }, 60_000);
});
