import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Key, Metadata, Root, Targets, Timestamp } from '@tufjs/models';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { DataSource } from 'typeorm';
import { hashSecret } from '../access/secret.js';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { type RoleKey, roleKeyFromPrivate } from './tuf-keys.js';
import { TufRepositoryService } from './tuf-repository.service.js';
import { parseRoot, tufTime } from './tuf-signing.js';

type MetadataJson = Record<string, unknown>;
const DAY = 86_400_000;

/** The device side: tuf-js with HTTP Basic, optionally answering some files with forged bytes. */
class DeviceFetcher extends BaseFetcher {
  constructor(
    private readonly authorization: string,
    private readonly forged: (url: string) => string | undefined = () => undefined,
  ) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const forged = this.forged(url);
    if (forged !== undefined) return new Blob([forged]).stream() as ReadableStream<Uint8Array<ArrayBuffer>>;
    const response = await fetch(url, { headers: { authorization: this.authorization } });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const newKey = (): RoleKey => roleKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const DEVICE_ID = 'offline-edge-1';
const DEVICE_SECRET = `fld_${randomBytes(32).toString('base64url')}`;
const AUTH = `Basic ${Buffer.from(`${DEVICE_ID}:${DEVICE_SECRET}`).toString('base64')}`;

/**
 * TUF_KEYS=offline against the real control plane and database: the operator's root and targets
 * keys exist only in this test (the operator's machine), the server holds snapshot and timestamp.
 */
describe.each(databaseBackends())('offline TUF keys on %s', (backend) => {
  let t: TestApp;
  let admin: ApiClient;
  const dirs: string[] = [];
  const rootKey = newKey();
  let targetsKey = newKey();
  let rootV1 = '';
  const artifact = randomBytes(64 * 1024);

  const sign = <T extends Root | Targets>(signed: T, ...keys: RoleKey[]): MetadataJson => {
    const m = new Metadata(signed);
    for (const k of keys) m.sign(k.sign);
    return m.toJSON();
  };

  async function upload(version: string, bytes: Uint8Array): Promise<Response> {
    const form = new FormData();
    form.append('version', version);
    form.append('metadata', JSON.stringify({ runtime: 'command' }));
    form.append('file', new Blob([bytes]), 'model.bin');
    return fetch(`${t.baseUrl}/api/v1/models/detector/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
  }

  async function device(root: string, forged?: (url: string) => string | undefined): Promise<{ updater: Updater; targetDir: string }> {
    const metadataDir = await mkdtemp(join(tmpdir(), 'fleetline-offline-md-'));
    const targetDir = await mkdtemp(join(tmpdir(), 'fleetline-offline-tg-'));
    dirs.push(metadataDir, targetDir);
    await writeFile(join(metadataDir, 'root.json'), root);
    return {
      targetDir,
      updater: new Updater({
        metadataDir,
        targetDir,
        metadataBaseUrl: `${t.baseUrl}/api/v1/tuf/metadata`,
        targetBaseUrl: `${t.baseUrl}/api/v1/tuf/targets`,
        fetcher: new DeviceFetcher(AUTH, forged),
      }),
    };
  }

  async function installs(root: string, path: string, bytes: Uint8Array): Promise<void> {
    const { updater, targetDir } = await device(root);
    const info = await updater.getTargetInfo(path);
    expect(info).toBeDefined();
    const file = await updater.downloadTarget(info!, join(targetDir, 'model.bin'));
    expect(sha256(await readFile(file))).toBe(sha256(bytes));
  }

  /** Pending targets as the server prepared them, signed by `keys` after `edit`. */
  async function pendingSignedBy(keys: RoleKey[], edit?: (json: { targets: Record<string, { hashes: { sha256: string } }> }) => void): Promise<MetadataJson> {
    const pending = await admin.get<{ pending: { signed: Record<string, unknown> } }>('/api/v1/tuf/admin/targets/pending');
    expect(pending.status).toBe(200);
    const json = structuredClone(pending.body.pending.signed) as { targets: Record<string, { hashes: { sha256: string } }> };
    edit?.(json);
    return sign(Targets.fromJSON(json as unknown as Parameters<typeof Targets.fromJSON>[0]), ...keys);
  }

  beforeAll(async () => {
    t = await startTestApp(backend, { TUF_KEYS: 'offline' });
    admin = apiClient(t.baseUrl, t.adminKey);
    await t.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, [DEVICE_ID, hashSecret(DEVICE_SECRET)]);
    expect((await admin.post('/api/v1/models', { name: 'detector' })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('starts with only the snapshot and timestamp keys and no root until the operator publishes one', async () => {
    expect((await readdir(join(t.dataDir, 'tuf-keys'))).sort()).toEqual(['snapshot.key.pem', 'timestamp.key.pem']);
    const status = await admin.get<{ code: string; message: string }>('/api/v1/tuf/admin/status');
    expect(status.status).toBe(404);
    expect(status.body.message).toContain('fleetctl keys init');
    type OnlineKey = { keyId: string; key: Parameters<typeof Key.fromJSON>[1] };
    const online = await admin.get<{ snapshot: OnlineKey; timestamp: OnlineKey }>('/api/v1/tuf/admin/online-keys');
    expect(online.status).toBe(200);

    const root = new Root({ version: 1, specVersion: '1.0.31', expires: tufTime(new Date(Date.now() + 365 * DAY)), consistentSnapshot: true });
    root.addKey(rootKey.key, 'root');
    root.addKey(targetsKey.key, 'targets');
    root.addKey(Key.fromJSON(online.body.snapshot.keyId, online.body.snapshot.key), 'snapshot');
    root.addKey(Key.fromJSON(online.body.timestamp.keyId, online.body.timestamp.key), 'timestamp');
    const emptyTargets = new Targets({ version: 1, specVersion: '1.0.31', expires: tufTime(new Date(Date.now() + 90 * DAY)) });
    // Without the targets, and with a root signed by a key it does not list: refused.
    expect((await admin.put('/api/v1/tuf/admin/root', { root: sign(root, rootKey) })).status).toBe(400);
    expect((await admin.put('/api/v1/tuf/admin/root', { root: sign(root, targetsKey), targets: sign(emptyTargets, targetsKey) })).status).toBe(400);
    const published = await admin.put<{ rootVersion: number }>('/api/v1/tuf/admin/root', {
      root: sign(root, rootKey),
      targets: sign(emptyTargets, targetsKey),
    });
    expect(published.status).toBe(200);
    expect(published.body.rootVersion).toBe(1);
    rootV1 = await t.app.get(TufRepositoryService).trustedRoot();
    const after = await admin.get<Record<string, { version: number; online: boolean }>>('/api/v1/tuf/admin/status');
    expect(after.body).toMatchObject({
      root: { version: 1, online: false },
      targets: { version: 1, online: false },
      snapshot: { online: true },
      timestamp: { online: true },
    });
  });

  it('stores an upload as awaiting-signature and refuses to assign or roll it out with 409', async () => {
    const res = await upload('1.0.0', artifact);
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ version: '1.0.0', status: 'awaiting-signature' });
    const assign = await admin.put<{ statusCode: number; code: string; message: string }>(`/api/v1/devices/${DEVICE_ID}/models/detector`, { version: '1.0.0' });
    expect(assign.status).toBe(409);
    expect(assign.body).toMatchObject({ statusCode: 409, code: 'version-awaiting-signature' });
    expect(assign.body.message).toContain('fleetctl targets sign');
    const rollout = await admin.post<{ code: string }>('/api/v1/rollouts', {
      model: 'detector',
      version: '1.0.0',
      target: { deviceIds: [DEVICE_ID] },
      waves: [{ percent: 100, bakeSeconds: 60 }],
    });
    expect(rollout.body).toMatchObject({ statusCode: 409 });
    expect(rollout.body.code).toBe('version-awaiting-signature');
    // Devices see no new target: the server could not sign one.
    const { updater } = await device(rootV1);
    expect(await updater.getTargetInfo('detector/1.0.0/model.bin')).toBeUndefined();
  });

  it('refuses unsigned, tampered, foreign-key and padded targets uploads with 400 and keeps the version unpublished', async () => {
    const pending = await admin.get<{ versions: unknown[]; pending: { signed: { version: number; targets: Record<string, { hashes: { sha256: string } }> } } }>(
      '/api/v1/tuf/admin/targets/pending',
    );
    expect(pending.body.versions).toEqual([{ model: 'detector', version: '1.0.0' }]);
    expect(pending.body.pending.signed.version).toBe(2);
    expect(pending.body.pending.signed.targets['detector/1.0.0/model.bin']?.hashes.sha256).toBe(sha256(artifact));

    expect((await admin.put('/api/v1/tuf/admin/targets', await pendingSignedBy([]))).status).toBe(400);
    expect((await admin.put('/api/v1/tuf/admin/targets', await pendingSignedBy([newKey()]))).status).toBe(400);
    // Signed, then a byte of `signed` changed: the signature no longer covers it.
    const tampered = await pendingSignedBy([targetsKey]);
    (tampered['signed'] as { targets: Record<string, { hashes: { sha256: string } }> }).targets['detector/1.0.0/model.bin']!.hashes.sha256 = sha256('evil');
    const refusedTampered = await admin.put<{ code: string; message: string }>('/api/v1/tuf/admin/targets', tampered);
    expect(refusedTampered.status).toBe(400);
    expect(refusedTampered.body.message).toContain('not signed by a threshold');
    // Validly signed, but listing bytes the server never received.
    const padded = await admin.put<{ code: string; details: { unknown: string[] } }>(
      '/api/v1/tuf/admin/targets',
      await pendingSignedBy([targetsKey], (json) => {
        json.targets['detector/1.0.0/model.bin']!.hashes.sha256 = sha256('other bytes');
      }),
    );
    expect(padded.status).toBe(400);
    expect(padded.body.details.unknown).toEqual(['detector/1.0.0/model.bin']);
    expect((await admin.get<{ status: string }>('/api/v1/models/detector/versions/1.0.0')).body.status).toBe('awaiting-signature');
  });

  it('publishes the version once the operator signs, and a device pinning root v1 installs it', async () => {
    const published = await admin.put<{ targetsVersion: number }>('/api/v1/tuf/admin/targets', await pendingSignedBy([targetsKey]));
    expect(published.status).toBe(200);
    expect(published.body.targetsVersion).toBe(2);
    expect((await admin.get<{ status: string }>('/api/v1/models/detector/versions/1.0.0')).body.status).toBe('published');
    expect((await admin.get<{ pending: unknown }>('/api/v1/tuf/admin/targets/pending')).body.pending).toBeNull();
    expect((await admin.put(`/api/v1/devices/${DEVICE_ID}/models/detector`, { version: '1.0.0' })).status).toBe(200);
    await installs(rootV1, 'detector/1.0.0/model.bin', artifact);
  });

  it('rotates the targets and timestamp keys: devices on root v1 follow to v2, the revoked keys are refused', async () => {
    const tuf = t.app.get(TufRepositoryService);
    const oldTargetsKey = targetsKey;
    const oldTimestampKey = roleKeyFromPrivate(createPrivateKey(await readFile(join(t.dataDir, 'tuf-keys', 'timestamp.key.pem'), 'utf8')));
    const staged = await admin.post<{ key: unknown; keyId: string }>('/api/v1/tuf/admin/online-keys/timestamp/next');
    expect(staged.status).toBe(200);
    expect((await admin.post<{ keyId: string }>('/api/v1/tuf/admin/online-keys/timestamp/next')).body.keyId).toBe(staged.body.keyId);
    expect((await admin.post('/api/v1/tuf/admin/online-keys/root/next')).status).toBe(400);
    targetsKey = newKey();

    const current = parseRoot(await tuf.trustedRoot());
    const json = current.signed.toJSON() as { keys: Record<string, unknown>; roles: Record<string, { keyids: string[] }> };
    json.keys[targetsKey.key.keyID] = targetsKey.key.toJSON();
    json.keys[staged.body.keyId] = staged.body.key;
    delete json.keys[oldTargetsKey.key.keyID];
    delete json.keys[oldTimestampKey.key.keyID];
    json.roles['targets']!.keyids = [targetsKey.key.keyID];
    json.roles['timestamp']!.keyids = [staged.body.keyId];
    const rootV2 = Root.fromJSON({ ...json, version: 2, expires: tufTime(new Date(Date.now() + 365 * DAY)) } as Parameters<typeof Root.fromJSON>[0]);
    const currentTargets = JSON.parse((await tuf.latest('targets')).json) as { signed: Record<string, unknown> };
    const resigned = Targets.fromJSON({ ...currentTargets.signed, version: 3, expires: tufTime(new Date(Date.now() + 90 * DAY)) } as Parameters<
      typeof Targets.fromJSON
    >[0]);

    // Targets still signed by the old key do not verify against the new root.
    expect((await admin.put('/api/v1/tuf/admin/root', { root: sign(rootV2, rootKey), targets: sign(resigned, oldTargetsKey) })).status).toBe(400);
    const rotated = await admin.put<{ rootVersion: number }>('/api/v1/tuf/admin/root', { root: sign(rootV2, rootKey), targets: sign(resigned, targetsKey) });
    expect(rotated.status).toBe(200);
    expect(rotated.body.rootVersion).toBe(2);
    // The staged key became the timestamp key; the server signs with it.
    expect((await readdir(join(t.dataDir, 'tuf-keys'))).sort()).toEqual(['snapshot.key.pem', 'timestamp.key.pem']);
    const timestamp = JSON.parse((await tuf.latest('timestamp')).json) as { signatures: { keyid: string }[] };
    expect(timestamp.signatures.map((s) => s.keyid)).toEqual([staged.body.keyId]);

    // A version uploaded after the rotation, signed with the new targets key only.
    const v2 = randomBytes(32 * 1024);
    expect((await upload('2.0.0', v2)).status).toBe(201);
    const revoked = await admin.put<{ message: string }>('/api/v1/tuf/admin/targets', await pendingSignedBy([oldTargetsKey]));
    expect(revoked.status).toBe(400);
    expect(revoked.body.message).toContain('not signed by a threshold');
    expect((await admin.put('/api/v1/tuf/admin/targets', await pendingSignedBy([targetsKey]))).status).toBe(200);
    expect((await admin.put(`/api/v1/devices/${DEVICE_ID}/models/detector`, { version: '2.0.0' })).status).toBe(200);
    await installs(rootV1, 'detector/2.0.0/model.bin', v2);
    await installs(rootV1, 'detector/1.0.0/model.bin', artifact);

    // Someone holding the revoked timestamp key serves a newer timestamp signed with it: a device refuses it.
    const latest = JSON.parse((await tuf.latest('timestamp')).json) as { signed: Record<string, unknown> };
    const forged = new Metadata(
      Timestamp.fromJSON({ ...latest.signed, version: Number(latest.signed['version']) + 1 } as Parameters<typeof Timestamp.fromJSON>[0]),
    );
    forged.sign(oldTimestampKey.sign);
    const forgedText = JSON.stringify(forged.toJSON());
    const { updater } = await device(rootV1, (url) => (url.endsWith('/timestamp.json') ? forgedText : undefined));
    await expect(updater.refresh()).rejects.toThrow(/timestamp/i);
  });

  it('refuses to start in offline mode with a root or targets key on the server', async () => {
    const tuf = t.app.get(TufRepositoryService);
    const file = join(t.dataDir, 'tuf-keys', 'targets.key.pem');
    await writeFile(file, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    try {
      await expect(tuf.initialise()).rejects.toThrow(/TUF_KEYS=offline but .*targets\.key\.pem exist/);
    } finally {
      await rm(file);
    }
    await expect(tuf.initialise()).resolves.toBeUndefined();
  });
});
