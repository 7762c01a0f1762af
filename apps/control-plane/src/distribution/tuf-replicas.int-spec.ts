import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, Root } from '@tufjs/models';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { DataSource } from 'typeorm';
import { hashSecret } from '../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { apiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { roleKeyFromPrivate, type RoleKey } from './tuf-keys.js';
import { TufMetadataRepository } from './tuf-metadata.repository.js';
import { TufRepositoryService } from './tuf-repository.service.js';
import { parseRoot, parseSnapshot, parseTimestamp, tufTime } from './tuf-signing.js';

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

const DEVICE_ID = 'tuf-edge-1';
const DEVICE_SECRET = `fld_${randomBytes(32).toString('base64url')}`;
const AUTH = `Basic ${Buffer.from(`${DEVICE_ID}:${DEVICE_SECRET}`).toString('base64')}`;

async function uploadVersion(t: TestApp, model: string, version: string): Promise<void> {
  const form = new FormData();
  form.append('version', version);
  form.append('file', new Blob([randomBytes(128)]), 'model.onnx');
  const res = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
  if (res.status !== 201) throw new Error(`upload ${model} ${version}: ${res.status} ${await res.text()}`);
}

/**
 * Rotates the snapshot and timestamp keys through replica `a`: the new key files go into the
 * (shared) tuf-keys directory first, then root N+1 is published, as docs/tuf.md prescribes.
 */
async function rotateOnlineKeys(a: TestApp): Promise<{ snapshot: RoleKey; timestamp: RoleKey }> {
  const keyDir = join(a.dataDir, 'tuf-keys');
  const current = parseRoot(await a.app.get(TufRepositoryService).trustedRoot());
  const rootKey = roleKeyFromPrivate(createPrivateKey(await readFile(join(keyDir, 'root.key.pem'), 'utf8')));
  const fresh = { snapshot: generateKeyPairSync('ed25519').privateKey, timestamp: generateKeyPairSync('ed25519').privateKey };
  for (const [role, key] of Object.entries(fresh)) {
    await writeFile(join(keyDir, `${role}.key.pem`), key.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: 0o600 });
  }
  const keys = { snapshot: roleKeyFromPrivate(fresh.snapshot), timestamp: roleKeyFromPrivate(fresh.timestamp) };
  const signed = current.signed.toJSON() as { keys: Record<string, unknown>; roles: Record<string, { keyids: string[] }> };
  for (const [role, k] of Object.entries(keys)) {
    signed.keys[k.key.keyID] = k.key.toJSON();
    signed.roles[role]!.keyids = [k.key.keyID];
  }
  const next = new Metadata(
    Root.fromJSON({ ...signed, version: current.signed.version + 1, expires: tufTime(new Date(Date.now() + 365 * 86_400_000)) } as Parameters<
      typeof Root.fromJSON
    >[0]),
  );
  next.sign(rootKey.sign);
  const res = await apiClient(a.baseUrl, a.adminKey).put<{ rootVersion: number }>('/api/v1/tuf/admin/root', { root: next.toJSON() });
  expect(res.status).toBe(200);
  expect(res.body.rootVersion).toBe(current.signed.version + 1);
  return keys;
}

describe.each(databaseBackends())('TUF signing keys across replicas on %s', (backend) => {
  let a: TestApp;
  const dirs: string[] = [];

  /** A device that pinned `root` refreshes against `baseUrl` (tuf-js verifies the whole chain). */
  async function deviceRefresh(baseUrl: string, root: string): Promise<Updater> {
    const metadataDir = await mkdtemp(join(tmpdir(), 'fleetline-tuf-md-'));
    const targetDir = await mkdtemp(join(tmpdir(), 'fleetline-tuf-tg-'));
    dirs.push(metadataDir, targetDir);
    await writeFile(join(metadataDir, 'root.json'), root);
    const updater = new Updater({
      metadataDir,
      targetDir,
      metadataBaseUrl: `${baseUrl}/api/v1/tuf/metadata`,
      targetBaseUrl: `${baseUrl}/api/v1/tuf/targets`,
      fetcher: new BasicAuthFetcher(AUTH),
    });
    await updater.refresh();
    return updater;
  }

  beforeAll(async () => {
    a = await startTestApp(backend);
    await a.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, [DEVICE_ID, hashSecret(DEVICE_SECRET)]);
    expect((await apiClient(a.baseUrl, a.adminKey).post('/api/v1/models', { name: 'detector' })).status).toBe(201);
    await uploadVersion(a, 'detector', '1.0.0');
    // ARTIFACT_ACCESS=assigned: the device reads the hash bin of what it was given.
    await a.app.get(DataSource).query(`INSERT INTO device_models (device_id, model, desired_version) VALUES ($1, 'detector', '1.0.0')`, [DEVICE_ID]);
  });
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    await a.close();
  });

  it('a second repository instance signs with the new keys after a rotation published by the first', async () => {
    // Replica B in the same database and key directory (on PGlite the only way to share one database).
    const b = new TufRepositoryService(a.app.get<AppConfig>(APP_CONFIG), a.app.get(DataSource), new TufMetadataRepository(a.app.get(DataSource)));
    await b.initialise();
    const pinned = await a.app.get(TufRepositoryService).trustedRoot();
    const rotated = await rotateOnlineKeys(a);

    // B renews timestamp (due 12 h before expiry) without a restart: it must sign with the key root v2 trusts.
    expect(await b.renewExpiring(new Date(Date.now() + 23 * 3600 * 1000))).toEqual(['timestamp']);
    b.forgetCached();
    a.app.get(TufRepositoryService).forgetCached();
    const timestamp = parseTimestamp((await b.latest('timestamp')).json);
    expect(Object.keys(timestamp.signatures)).toEqual([rotated.timestamp.key.keyID]);
    expect((await b.status()).timestamp).toMatchObject({ online: true, keyIds: [rotated.timestamp.key.keyID] });
    const updater = await deviceRefresh(a.baseUrl, pinned);
    expect(await updater.getTargetInfo('detector/1.0.0/model.onnx')).toBeDefined();
  });

  if (backend === 'postgres') {
    it('replica B publishes an upload signed with the keys rotated on replica A, and devices verify it', async () => {
      const b = await startTestApp('pglite', { DATABASE_URL: a.databaseUrl!, DATA_DIR: a.dataDir });
      try {
        const pinned = await b.app.get(TufRepositoryService).trustedRoot();
        const rotated = await rotateOnlineKeys(a);
        // B signs new targets, snapshot and timestamp for an upload it serves.
        await uploadVersion(b, 'detector', '1.1.0');
        await a.app.get(DataSource).query(`UPDATE device_models SET desired_version = '1.1.0', active_version = '1.0.0' WHERE device_id = $1`, [DEVICE_ID]);
        const snapshot = parseSnapshot((await b.app.get(TufRepositoryService).latest('snapshot')).json);
        expect(Object.keys(snapshot.signatures)).toEqual([rotated.snapshot.key.keyID]);
        const updater = await deviceRefresh(b.baseUrl, pinned);
        expect(await updater.getTargetInfo('detector/1.1.0/model.onnx')).toBeDefined();
        expect(parseRoot(await b.app.get(TufRepositoryService).trustedRoot()).signed.version).toBe(parseRoot(pinned).signed.version + 1);
      } finally {
        await b.close();
      }
    });
  }
});
