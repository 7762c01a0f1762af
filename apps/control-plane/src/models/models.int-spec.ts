import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import type { VersionView } from './models.service.js';

const MAX_ARTIFACT_BYTES = 2 * 1024 * 1024;

interface UploadPart {
  name: string;
  value: string | { bytes: Uint8Array; fileName: string };
}

async function upload(t: TestApp, model: string, parts: UploadPart[]): Promise<{ status: number; body: Record<string, unknown> }> {
  const form = new FormData();
  for (const part of parts) {
    if (typeof part.value === 'string') form.append(part.name, part.value);
    else form.append(part.name, new Blob([part.value.bytes]), part.value.fileName);
  }
  const response = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.adminKey}` },
    body: form,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function file(bytes: Uint8Array, fileName = 'model.onnx'): UploadPart {
  return { name: 'file', value: { bytes, fileName } };
}

/** Every file under the artifact store (temp files included), to prove refused uploads leave nothing. */
async function storedFiles(t: TestApp): Promise<string[]> {
  try {
    const entries = await readdir(join(t.dataDir, 'artifacts'), { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

describe.each(databaseBackends())('models on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;

  beforeAll(async () => {
    t = await startTestApp(backend, { MAX_ARTIFACT_BYTES: String(MAX_ARTIFACT_BYTES) });
    api = apiClient(t.baseUrl, t.adminKey);
  });
  afterAll(() => t.close());

  it('creates a model once, refuses duplicates and malformed input', async () => {
    const created = await api.post<Record<string, unknown>>('/api/v1/models', { name: 'detector', description: 'finds defects' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'detector', description: 'finds defects', latestVersion: null, versionCount: 0 });

    expect((await api.post('/api/v1/models', { name: 'detector' })).status).toBe(409);
    const badName = await api.post<{ code: string }>('/api/v1/models', { name: 'Not A Name' });
    expect(badName.status).toBe(400);
    expect((await api.post('/api/v1/models', { name: 42 })).status).toBe(400);
    expect((await api.post('/api/v1/models', { name: 'ok-name', extra: true })).status).toBe(400);
    expect((await apiClient(t.baseUrl).post('/api/v1/models', { name: 'anon' })).status).toBe(401);

    const one = await api.get<Record<string, unknown>>('/api/v1/models/detector');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ name: 'detector', versionCount: 0 });
    expect((await api.get('/api/v1/models/nope')).status).toBe(404);
  });

  it('uploads a version, streams it to the store and answers with digests', async () => {
    const bytes = randomBytes(300_000);
    const labels = randomBytes(1000);
    const metadata = {
      framework: 'pytorch',
      compatibility: { hardwareClasses: ['jetson-orin'], runtimeRange: '>=1.17' },
      referenceDistribution: { ok: 900, defect: 100 },
      notes: 'first cut',
    };
    const res = await upload(t, 'detector', [
      { name: 'version', value: '1.0.0' },
      { name: 'metadata', value: JSON.stringify(metadata) },
      file(bytes, 'model.onnx'),
      { name: 'file', value: { bytes: labels, fileName: 'labels.onnx' } },
    ]);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      model: 'detector',
      version: '1.0.0',
      referenceDistribution: { ok: 900, defect: 100 },
      metadata: { framework: 'pytorch', notes: 'first cut', compatibility: metadata.compatibility },
      artifacts: [
        {
          fileName: 'model.onnx',
          targetPath: 'detector/1.0.0/model.onnx',
          sha256: createHash('sha256').update(bytes).digest('hex'),
          size: bytes.length,
          runtime: 'onnx',
          framework: 'pytorch',
          compatibility: metadata.compatibility,
        },
        { fileName: 'labels.onnx', size: labels.length, sha256: createHash('sha256').update(labels).digest('hex') },
      ],
    });
    expect((await storedFiles(t)).filter((f) => !f.includes('.tmp'))).toHaveLength(2);

    const got = await api.get<VersionView>('/api/v1/models/detector/versions/1.0.0');
    expect(got.status).toBe(200);
    expect(got.body.artifacts.map((a) => a.fileName)).toEqual(['model.onnx', 'labels.onnx']);
    expect((await api.get('/api/v1/models/detector/versions/9.9.9')).status).toBe(404);
    expect((await api.get('/api/v1/models/nope/versions/1.0.0')).status).toBe(404);
  });

  it('refuses a duplicate version with 409 and leaves no file behind', async () => {
    const before = await storedFiles(t);
    const res = await upload(t, 'detector', [{ name: 'version', value: '1.0.0' }, file(randomBytes(50_000))]);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'duplicate-version' });
    expect(await storedFiles(t)).toEqual(before);
  });

  it('refuses bad versions, unknown models, malformed metadata and misplaced fields with 4xx', async () => {
    const before = await storedFiles(t);
    for (const version of ['1.0', 'v1.2.3', '1.2.3+build', '01.2.3', 'latest']) {
      const res = await upload(t, 'detector', [{ name: 'version', value: version }, file(randomBytes(10))]);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'invalid-version' });
    }
    const unknown = await upload(t, 'ghost', [{ name: 'version', value: '1.0.0' }, file(randomBytes(10))]);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'model-not-found' });

    const wrongTypes = await upload(t, 'detector', [
      { name: 'version', value: '3.0.0' },
      { name: 'metadata', value: JSON.stringify({ compatibility: { hardwareClasses: 'jetson' }, referenceDistribution: { a: 'many' } }) },
      file(randomBytes(10)),
    ]);
    expect(wrongTypes.status).toBe(400);
    expect(wrongTypes.body).toMatchObject({ code: 'invalid-metadata', message: expect.stringContaining('compatibility.hardwareClasses') });
    const notJson = await upload(t, 'detector', [{ name: 'version', value: '3.0.0' }, { name: 'metadata', value: '{nope' }, file(randomBytes(10))]);
    expect(notJson.status).toBe(400);

    const noRuntime = await upload(t, 'detector', [{ name: 'version', value: '3.0.0' }, file(randomBytes(10), 'model.tflite')]);
    expect(noRuntime.status).toBe(400);
    expect(noRuntime.body).toMatchObject({ code: 'invalid-metadata', message: expect.stringContaining('runtime') });

    const filesFirst = await upload(t, 'detector', [file(randomBytes(10)), { name: 'version', value: '3.0.0' }]);
    expect(filesFirst.status).toBe(400);
    expect(filesFirst.body).toMatchObject({ code: 'invalid-upload', message: expect.stringContaining('must come before') });
    // curl -F puts parts in the order given: metadata after the file is refused with the order to use.
    const metadataLast = await upload(t, 'detector', [
      { name: 'version', value: '3.0.0' },
      file(randomBytes(10)),
      { name: 'metadata', value: JSON.stringify({ runtime: 'onnx' }) },
    ]);
    expect(metadataLast.status).toBe(400);
    expect(metadataLast.body).toMatchObject({
      statusCode: 400,
      code: 'invalid-upload',
      message: expect.stringMatching(/field "metadata" arrived after a file: .*"metadata"\) fields must come before the "file" parts/),
    });

    const noFile = await upload(t, 'detector', [{ name: 'version', value: '3.0.0' }]);
    expect(noFile.status).toBe(400);
    const badName = await upload(t, 'detector', [{ name: 'version', value: '3.0.0' }, file(randomBytes(10), '.hidden model.onnx')]);
    expect(badName.status).toBe(400);

    const json = await api.post('/api/v1/models/detector/versions', { version: '3.0.0' });
    expect(json.status).toBe(400);
    expect(await storedFiles(t)).toEqual(before);
    expect((await api.get('/api/v1/models/detector/versions/3.0.0')).status).toBe(404);
  });

  it('refuses an artifact over MAX_ARTIFACT_BYTES with 413 and keeps nothing', async () => {
    const before = await storedFiles(t);
    const res = await upload(t, 'detector', [
      { name: 'version', value: '4.0.0' },
      file(randomBytes(1000), 'small.onnx'),
      file(randomBytes(MAX_ARTIFACT_BYTES + 1), 'big.onnx'),
    ]);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ code: 'artifact-too-large' });
    expect(await storedFiles(t)).toEqual(before);
    expect((await api.get('/api/v1/models/detector/versions/4.0.0')).status).toBe(404);
  });

  it('cleans up when the client goes away mid-upload', async () => {
    const before = await storedFiles(t);
    const boundary = 'fleetline-abort';
    const req = request(`${t.baseUrl}/api/v1/models/detector/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    req.on('error', () => undefined);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n5.0.0\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.onnx"\r\n\r\n`,
    );
    req.write(randomBytes(512 * 1024));
    // Wait until the part is being written to the store, then cut the connection.
    await eventually(async () => ((await storedFiles(t)).length > before.length ? true : undefined), 10_000, 'the upload to start');
    req.destroy();
    await eventually(async () => ((await storedFiles(t)).length === before.length ? true : undefined), 10_000, 'the partial file to be removed');
    expect((await api.get('/api/v1/models/detector/versions/5.0.0')).status).toBe(404);
  });

  it('lists versions newest semver first with keyset pagination', async () => {
    expect((await api.post('/api/v1/models', { name: 'ranker' })).status).toBe(201);
    const versions = ['1.0.0', '1.10.0', '1.2.0', '2.0.0-rc.1', '2.0.0', '0.9.0', '2.0.0-beta.11', '2.0.0-beta.2'];
    for (const version of versions) {
      const res = await upload(t, 'ranker', [
        { name: 'version', value: version },
        { name: 'metadata', value: '{"runtime":"simulated"}' },
        file(randomBytes(64), 'weights.bin'),
      ]);
      expect(res.status).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=3&after=${encodeURIComponent(cursor)}` : '?limit=3';
      const page = await api.get<{ items: VersionView[]; next: string | null }>(`/api/v1/models/ranker/versions${query}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.items.map((v) => v.version));
      cursor = page.body.next;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(['2.0.0', '2.0.0-rc.1', '2.0.0-beta.11', '2.0.0-beta.2', '1.10.0', '1.2.0', '1.0.0', '0.9.0']);
    expect(pages).toBe(3);
    expect((await api.get('/api/v1/models/ranker/versions?after=garbage')).status).toBe(400);
    expect((await api.get('/api/v1/models/ranker/versions?limit=0')).status).toBe(400);
    expect((await api.get('/api/v1/models/ranker/versions?limit=abc')).status).toBe(400);
    expect((await api.get('/api/v1/models/ghost/versions')).status).toBe(404);

    const models = await api.get<{ items: { name: string; latestVersion: string | null; versionCount: number }[]; next: string | null }>(
      '/api/v1/models?limit=1',
    );
    expect(models.body.items).toEqual([expect.objectContaining({ name: 'detector', latestVersion: '1.0.0', versionCount: 1 })]);
    const rest = await api.get<{ items: { name: string; latestVersion: string | null; versionCount: number }[]; next: string | null }>(
      `/api/v1/models?limit=1&after=${encodeURIComponent(models.body.next ?? '')}`,
    );
    expect(rest.body.items).toEqual([expect.objectContaining({ name: 'ranker', latestVersion: '2.0.0', versionCount: 8 })]);
    expect(rest.body.next).toBeNull();
  });
});
