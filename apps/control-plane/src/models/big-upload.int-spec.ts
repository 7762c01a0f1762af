import { createHash, randomFillSync } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { apiClient, startTestApp, type TestApp } from '../testing/test-app.fixture.js';

const TOTAL_BYTES = 200 * 1024 * 1024;
const CHUNK_BYTES = 256 * 1024;
const MAX_RSS_GROWTH = 100 * 1024 * 1024;

/**
 * A multipart body generated on the fly: fields, then one file part of TOTAL_BYTES pseudo-random
 * bytes. Nothing holds more than one chunk; the digest is computed as the bytes go out.
 */
async function* multipartBody(boundary: string, digest: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  yield encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n1.0.0\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{"runtime":"onnx"}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  for (let sent = 0; sent < TOTAL_BYTES; sent += CHUNK_BYTES) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(CHUNK_BYTES, TOTAL_BYTES - sent)));
    digest.update(chunk);
    yield chunk;
  }
  yield encoder.encode(`\r\n--${boundary}--\r\n`);
}

describe('a 200 MB upload (pglite)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp('pglite');
  });
  afterAll(() => t.close());

  it('streams to disk without holding the file in memory', async () => {
    expect((await apiClient(t.baseUrl, t.adminKey).post('/api/v1/models', { name: 'big' })).status).toBe(201);
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const digest = createHash('sha256');
    const boundary = `fleetline-${Date.now()}`;
    let response: Response;
    try {
      response = await fetch(`${t.baseUrl}/api/v1/models/big/versions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: multipartBody(boundary, digest),
        duplex: 'half',
      } as RequestInit);
    } finally {
      clearInterval(sampler);
    }
    const body = (await response.json()) as { artifacts: { sha256: string; size: number }[] };
    expect(response.status).toBe(201);
    const expected = digest.digest('hex');
    expect(body.artifacts).toEqual([expect.objectContaining({ sha256: expected, size: TOTAL_BYTES, runtime: 'onnx' })]);
    const growth = peak - baseline;
    process.stdout.write(`200 MB upload: RSS grew by ${(growth / 1024 / 1024).toFixed(1)} MB\n`);
    expect(growth).toBeLessThan(MAX_RSS_GROWTH);

    const [row] = (await t.app.get(DataSource).query(`SELECT storage_key, size FROM artifacts WHERE model = 'big'`)) as { storage_key: string; size: string }[];
    expect(Number(row!.size)).toBe(TOTAL_BYTES);
    expect((await stat(join(t.dataDir, 'artifacts', row!.storage_key))).size).toBe(TOTAL_BYTES);
  }, 180_000);
});
