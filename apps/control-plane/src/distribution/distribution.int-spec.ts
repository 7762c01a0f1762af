import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { Metadata, Root, Targets } from '@tufjs/models';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { DataSource } from 'typeorm';
import { hashSecret } from '../access/secret.js';
import { apiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { roleKeyFromPrivate, type RoleKey } from './tuf-keys.js';
import { TufRepositoryService } from './tuf-repository.service.js';
import { binOf } from './tuf-bins.js';
import { parseRoot, parseTargets, tufTime } from './tuf-signing.js';

/** The device side: tuf-js with HTTP Basic on every request, as the agent does it. */
class BasicAuthFetcher extends BaseFetcher {
  constructor(private readonly authorization: string) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, { headers: { authorization: this.authorization } });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const DEVICE_ID = 'edge-0001';
const DEVICE_SECRET = `fld_${randomBytes(32).toString('base64url')}`;
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe.each(databaseBackends())('distribution on %s', (backend) => {
  let t: TestApp;
  let dirs: string[] = [];
  const artifact = randomBytes(256 * 1024 + 17);
  const sha256 = createHash('sha256').update(artifact).digest('hex');
  const auth = basic(DEVICE_ID, DEVICE_SECRET);

  async function updater(root?: string): Promise<{ updater: Updater; targetDir: string }> {
    const metadataDir = await mkdtemp(join(tmpdir(), 'fleetline-tuf-md-'));
    const targetDir = await mkdtemp(join(tmpdir(), 'fleetline-tuf-tg-'));
    dirs.push(metadataDir, targetDir);
    await writeFile(join(metadataDir, 'root.json'), root ?? (await t.app.get(TufRepositoryService).trustedRoot()));
    return {
      targetDir,
      updater: new Updater({
        metadataDir,
        targetDir,
        metadataBaseUrl: `${t.baseUrl}/api/v1/tuf/metadata`,
        targetBaseUrl: `${t.baseUrl}/api/v1/tuf/targets`,
        fetcher: new BasicAuthFetcher(auth),
      }),
    };
  }

  function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> {
    return fetch(`${t.baseUrl}${path}`, { method, headers: { authorization: auth, ...headers } });
  }

  beforeAll(async () => {
    t = await startTestApp(backend);
    // A device as the devices feature stores it: only the hash of its secret.
    await t.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, [DEVICE_ID, hashSecret(DEVICE_SECRET)]);
    const api = apiClient(t.baseUrl, t.adminKey);
    expect((await api.post('/api/v1/models', { name: 'detector' })).status).toBe(201);
    const form = new FormData();
    form.append('version', '1.0.0');
    form.append('metadata', JSON.stringify({ runtime: 'onnx', framework: 'pytorch' }));
    form.append('file', new Blob([artifact]), 'model.onnx');
    const res = await fetch(`${t.baseUrl}/api/v1/models/detector/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
    expect(res.status).toBe(201);
    // ARTIFACT_ACCESS=assigned (the default): the device may download only what it was given.
    await t.app.get(DataSource).query(`INSERT INTO device_models (device_id, model, desired_version) VALUES ($1, 'detector', '1.0.0')`, [DEVICE_ID]);
  });
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    dirs = [];
    await t.close();
  });

  it('serves the metadata chain to authenticated devices only', async () => {
    const root = await get('/api/v1/tuf/metadata/1.root.json');
    expect(root.status).toBe(200);
    const rootJson = (await root.json()) as { signed: { _type: string; consistent_snapshot: boolean; version: number } };
    expect(rootJson.signed).toMatchObject({ _type: 'root', consistent_snapshot: true, version: 1 });
    expect((await get('/api/v1/tuf/metadata/root.json')).status).toBe(200);
    // tuf-js ends root rotation on 404 (TUF spec §5.3.3).
    expect((await get('/api/v1/tuf/metadata/2.root.json')).status).toBe(404);
    const timestamp = (await (await get('/api/v1/tuf/metadata/timestamp.json')).json()) as { signed: { meta: Record<string, { version: number }> } };
    const snapshotVersion = timestamp.signed.meta['snapshot.json']!.version;
    const snapshot = (await (await get(`/api/v1/tuf/metadata/${snapshotVersion}.snapshot.json`)).json()) as {
      signed: { meta: Record<string, { version: number }> };
    };
    const targetsVersion = snapshot.signed.meta['targets.json']!.version;
    const targets = (await (await get(`/api/v1/tuf/metadata/${targetsVersion}.targets.json`)).json()) as {
      signed: { targets: Record<string, unknown>; delegations: { succinct_roles: { bit_length: number; name_prefix: string } } };
    };
    // Top-level targets lists nothing itself: every path is in the hash bin its sha256 points at (TAP 15).
    expect(targets.signed.targets).toEqual({});
    expect(targets.signed.delegations.succinct_roles).toMatchObject({ bit_length: 8, name_prefix: 'bins' });
    expect(Object.keys(snapshot.signed.meta).filter((f) => f.startsWith('bins-'))).toHaveLength(256);
    const bin = binOf('detector/1.0.0/model.onnx', 8);
    const binFile = (await (await get(`/api/v1/tuf/metadata/${snapshot.signed.meta[`${bin}.json`]!.version}.${bin}.json`)).json()) as {
      signed: { targets: Record<string, unknown> };
    };
    expect(binFile.signed.targets['detector/1.0.0/model.onnx']).toEqual({
      length: artifact.length,
      hashes: { sha256 },
      custom: { model: 'detector', version: '1.0.0', runtime: 'onnx', framework: 'pytorch' },
    });
    expect((await get('/api/v1/tuf/metadata/999.targets.json')).status).toBe(404);
    expect((await get('/api/v1/tuf/metadata/evil.json')).status).toBe(404);
    expect((await get(`/api/v1/tuf/metadata/999.${bin}.json`)).status).toBe(404);

    expect((await fetch(`${t.baseUrl}/api/v1/tuf/metadata/timestamp.json`)).status).toBe(401);
    expect((await fetch(`${t.baseUrl}/api/v1/tuf/metadata/timestamp.json`, { headers: { authorization: basic(DEVICE_ID, 'wrong') } })).status).toBe(401);
    // An admin API key is not a device credential.
    expect((await fetch(`${t.baseUrl}/api/v1/tuf/metadata/timestamp.json`, { headers: { authorization: `Bearer ${t.adminKey}` } })).status).toBe(401);
  });

  it('verifies and downloads a target with tuf-js', async () => {
    const { updater: client, targetDir } = await updater();
    await client.refresh();
    const info = await client.getTargetInfo('detector/1.0.0/model.onnx');
    expect(info).toBeDefined();
    expect(info!.custom).toMatchObject({ runtime: 'onnx' });
    const path = await client.downloadTarget(info!, join(targetDir, 'model.onnx'));
    expect(
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    ).toBe(sha256);
    // A version this device was not given: its hash bin is not one the device may read (ARTIFACT_ACCESS=assigned).
    await expect(client.getTargetInfo('detector/9.9.9/model.onnx')).rejects.toThrow(/HTTP 403/);
  });

  it('serves byte ranges, HEAD and both target names', async () => {
    const prefixed = `/api/v1/tuf/targets/detector/1.0.0/${sha256}.model.onnx`;
    const plain = '/api/v1/tuf/targets/detector/1.0.0/model.onnx';
    const full = await get(plain);
    expect(full.status).toBe(200);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('etag')).toBe(`"${sha256}"`);
    expect(full.headers.get('content-length')).toBe(String(artifact.length));
    expect(Buffer.from(await full.arrayBuffer()).equals(artifact)).toBe(true);

    const slice = await get(prefixed, { range: 'bytes=1000-4999' });
    expect(slice.status).toBe(206);
    expect(slice.headers.get('content-range')).toBe(`bytes 1000-4999/${artifact.length}`);
    expect(slice.headers.get('content-length')).toBe('4000');
    expect(Buffer.from(await slice.arrayBuffer()).equals(artifact.subarray(1000, 5000))).toBe(true);

    const tail = await get(prefixed, { range: 'bytes=-100' });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(artifact.subarray(artifact.length - 100))).toBe(true);

    const resumed = await get(prefixed, { range: `bytes=${artifact.length - 10}-`, 'if-range': `"${sha256}"` });
    expect(resumed.status).toBe(206);
    expect(Buffer.from(await resumed.arrayBuffer()).equals(artifact.subarray(artifact.length - 10))).toBe(true);
    const changed = await get(prefixed, { range: 'bytes=0-9', 'if-range': '"other"' });
    expect(changed.status).toBe(200);
    await changed.body?.cancel();

    const outside = await get(prefixed, { range: `bytes=${artifact.length}-` });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${artifact.length}`);
    await outside.body?.cancel();

    const head = await get(prefixed, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(artifact.length));

    expect((await get(`/api/v1/tuf/targets/detector/1.0.0/${'0'.repeat(64)}.model.onnx`)).status).toBe(404);
    expect((await get('/api/v1/tuf/targets/detector/2.0.0/model.onnx')).status).toBe(404);
    expect((await fetch(`${t.baseUrl}${prefixed}`)).status).toBe(401);
  });

  it('lets tuf-js reject a file tampered with on disk', async () => {
    // A version no device downloaded yet, so no replica holds its bytes in memory (HotArtifacts
    // keeps only bytes that still hash to the upload, and this file is damaged before any download).
    const fresh = randomBytes(64 * 1024);
    const form = new FormData();
    form.append('version', '1.0.1');
    form.append('metadata', JSON.stringify({ runtime: 'onnx', framework: 'pytorch' }));
    form.append('file', new Blob([fresh]), 'model.onnx');
    const uploaded = await fetch(`${t.baseUrl}/api/v1/models/detector/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminKey}` },
      body: form,
    });
    expect(uploaded.status).toBe(201);
    await t.app.get(DataSource).query(`UPDATE device_models SET desired_version = '1.0.1' WHERE device_id = $1 AND model = 'detector'`, [DEVICE_ID]);
    const [row] = (await t.app.get(DataSource).query(`SELECT storage_key FROM artifacts WHERE target_path = $1`, ['detector/1.0.1/model.onnx'])) as {
      storage_key: string;
    }[];
    const handle = await open(join(t.dataDir, 'artifacts', row!.storage_key), 'r+');
    try {
      await handle.write(Buffer.from([fresh[4096]! ^ 0xff]), 0, 1, 4096);
    } finally {
      await handle.close();
    }
    const { updater: client, targetDir } = await updater();
    const info = await client.getTargetInfo('detector/1.0.1/model.onnx');
    await expect(client.downloadTarget(info!, join(targetDir, 'model.onnx'))).rejects.toThrow(/hash/i);
    await t.app.get(DataSource).query(`UPDATE device_models SET desired_version = '1.0.0' WHERE device_id = $1 AND model = 'detector'`, [DEVICE_ID]);
  });

  it('re-signs expiring metadata and rotates root so devices follow', async () => {
    const tuf = t.app.get(TufRepositoryService);
    const pinned = await tuf.trustedRoot();
    // A token made now pins root v1 (its pin: the first 32 hex digits of sha256(root v1)).
    const token = (await apiClient(t.baseUrl, t.adminKey).post<{ token: string }>('/api/v1/enrollment-tokens', { name: 'before-rotation' })).body.token;
    const soon = new Date(Date.now() + 23 * 3600 * 1000);
    expect(await tuf.renewExpiring(soon)).toEqual(['timestamp']);
    expect(await tuf.renewExpiring(soon)).toEqual([]);
    const muchLater = new Date(Date.now() + 320 * 24 * 3600 * 1000);
    expect(await tuf.renewExpiring(muchLater)).toEqual(['root', 'targets', 'bins', 'snapshot', 'timestamp']);
    expect((await get('/api/v1/tuf/metadata/2.root.json')).status).toBe(200);

    // A device that pinned root v1 walks to v2 and still verifies its download.
    const { updater: client, targetDir } = await updater(pinned);
    const info = await client.getTargetInfo('detector/1.0.0/model.onnx');
    const path = await client.downloadTarget(info!, join(targetDir, 'model.onnx'));
    expect(
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    ).toBe(sha256);
    expect(JSON.parse(await tuf.trustedRoot())).toMatchObject({ signed: { version: 2 } });

    // After the rotation that token still enrolls, and is answered with the root it pins (the
    // device walks forward from it, as above); a pin of any root ever published finds it.
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const enrolled = await fetch(`${t.baseUrl}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, id: 'enrolled-after-rotation' }),
    });
    expect(enrolled.status).toBe(201);
    expect(((await enrolled.json()) as { tuf: { root: string } }).tuf.root).toBe(pinned);
    expect(await tuf.rootByPin(sha(pinned))).toBe(pinned);
    expect(await tuf.rootByPin(sha(await tuf.trustedRoot()).slice(0, 32))).toBe(await tuf.trustedRoot());
    expect(await tuf.rootByPin('0'.repeat(32))).toBeUndefined();
  });

  it('rotates to an offline root and targets key and accepts offline-signed targets', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const tuf = t.app.get(TufRepositoryService);
    const current = parseRoot(await tuf.trustedRoot());
    const oldRootKey = roleKeyFromPrivate(createPrivateKey(await readFile(join(t.dataDir, 'tuf-keys', 'root.key.pem'), 'utf8')));
    const offlineRoot = roleKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
    const offlineTargets = roleKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
    const nextRoot = (...signers: RoleKey[]): Record<string, unknown> => {
      const signed = current.signed.toJSON() as { keys: Record<string, unknown>; roles: Record<string, { keyids: string[] }> };
      for (const k of [offlineRoot, offlineTargets]) signed.keys[k.key.keyID] = k.key.toJSON();
      signed.roles['root']!.keyids = [offlineRoot.key.keyID];
      signed.roles['targets']!.keyids = [offlineTargets.key.keyID];
      const root = new Metadata(
        Root.fromJSON({ ...signed, version: current.signed.version + 1, expires: tufTime(new Date(Date.now() + 365 * 86_400_000)) } as Parameters<
          typeof Root.fromJSON
        >[0]),
      );
      for (const s of signers) root.sign(s.sign);
      return root.toJSON();
    };
    const nextTargets = async (signer: RoleKey, withoutBins?: 'without-bins'): Promise<Record<string, unknown>> => {
      const latest = parseTargets((await tuf.latest('targets')).json);
      const json = latest.signed.toJSON() as { targets: Record<string, unknown>; delegations?: unknown };
      if (withoutBins) delete json.delegations;
      const targets = new Metadata(
        Targets.fromJSON({ ...json, version: latest.signed.version + 1, expires: tufTime(new Date(Date.now() + 90 * 86_400_000)) } as Parameters<
          typeof Targets.fromJSON
        >[0]),
      );
      targets.sign(signer.sign);
      return targets.toJSON();
    };

    const onlyNewKey = await admin.put<{ code: string }>('/api/v1/tuf/admin/root', { root: nextRoot(offlineRoot) });
    expect(onlyNewKey.status).toBe(400);
    expect(onlyNewKey.body.code).toBe('invalid-metadata');
    const withoutTargets = await admin.put('/api/v1/tuf/admin/root', { root: nextRoot(oldRootKey, offlineRoot) });
    expect(withoutTargets.status).toBe(400);
    const rotated = await admin.put<{ rootVersion: number }>('/api/v1/tuf/admin/root', {
      root: nextRoot(oldRootKey, offlineRoot),
      targets: await nextTargets(offlineTargets),
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.rootVersion).toBe(current.signed.version + 1);
    const status = await admin.get<Record<string, { version: number; online: boolean }>>('/api/v1/tuf/admin/status');
    expect(status.body).toMatchObject({ root: { online: false }, targets: { online: false }, snapshot: { online: true }, timestamp: { online: true } });
    expect((await apiClient(t.baseUrl).get('/api/v1/tuf/admin/status')).status).toBe(401);

    // Devices that pinned root v1 walk the whole chain to the offline root and still verify.
    const { updater: client, targetDir } = await updater(await (await get('/api/v1/tuf/metadata/1.root.json')).text());
    const info = await client.getTargetInfo('detector/1.0.0/model.onnx');
    const path = await client.downloadTarget(info!, join(targetDir, 'model.onnx'));
    expect(
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    ).toBe(sha256);

    // Uploads go into the hash bins, signed by the bins key the (now offline-signed) targets still delegate to.
    const form = new FormData();
    form.append('version', '1.1.0');
    form.append('file', new Blob([randomBytes(100)]), 'model.onnx');
    const upload = await fetch(`${t.baseUrl}/api/v1/models/detector/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminKey}` },
      body: form,
    });
    expect(upload.status).toBe(201);
    tuf.forgetCached();
    // Given 1.1.0 while it runs 1.0.0: it may read the hash bins of both.
    await t.app
      .get(DataSource)
      .query(`UPDATE device_models SET desired_version = '1.1.0', active_version = '1.0.0' WHERE device_id = $1 AND model = 'detector'`, [DEVICE_ID]);
    const afterUpload = await updater(await (await get('/api/v1/tuf/metadata/1.root.json')).text());
    expect(await afterUpload.updater.getTargetInfo('detector/1.1.0/model.onnx')).toMatchObject({ length: 100 });

    // Targets without the delegation would drop every published artifact (they live in the bins).
    const dropping = await admin.put<{ code: string; details?: { missing: string[] } }>(
      '/api/v1/tuf/admin/targets',
      await nextTargets(offlineTargets, 'without-bins'),
    );
    expect(dropping.status).toBe(400);
    expect(JSON.stringify(dropping.body)).toContain('detector/1.0.0/model.onnx');
    expect((await admin.put('/api/v1/tuf/admin/targets', await nextTargets(oldRootKey))).status).toBe(400);
    const published = await admin.put<{ targetsVersion: number }>('/api/v1/tuf/admin/targets', await nextTargets(offlineTargets));
    expect(published.status).toBe(200);
    // One Updater refreshes once (tuf-js keeps its trusted set); a device starts a new one per check.
    const later = await updater(await (await get('/api/v1/tuf/metadata/1.root.json')).text());
    expect(await later.updater.getTargetInfo('detector/1.0.0/model.onnx')).toBeDefined();
    expect(await later.updater.getTargetInfo('detector/1.1.0/model.onnx')).toBeDefined();
    expect(JSON.parse((await tuf.latest('targets')).json)).toMatchObject({ signed: { version: published.body.targetsVersion } });
  });
});
