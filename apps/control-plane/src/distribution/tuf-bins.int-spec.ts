import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, Targets } from '@tufjs/models';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { DataSource } from 'typeorm';
import { hashSecret } from '../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { apiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { binNames, binOf, binVersionsOf, succinctRolesOf } from './tuf-bins.js';
import { roleKeyFromPrivate } from './tuf-keys.js';
import { TufMetadataRepository } from './tuf-metadata.repository.js';
import { TufRepositoryService } from './tuf-repository.service.js';
import { parseSnapshot, parseTargets, signNextSnapshot, signNextTimestamp, type TargetInput, tufTime } from './tuf-signing.js';

/** Records the metadata file names a device downloads (what a refresh costs it). */
class RecordingFetcher extends BaseFetcher {
  readonly files: string[] = [];
  constructor(private readonly authorization: string) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, { headers: { authorization: this.authorization } });
    if (url.includes('/tuf/metadata/')) this.files.push(url.slice(url.lastIndexOf('/') + 1));
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const DEVICE_ID = 'bins-edge-1';
const DEVICE_SECRET = `fld_${randomBytes(32).toString('base64url')}`;
const AUTH = `Basic ${Buffer.from(`${DEVICE_ID}:${DEVICE_SECRET}`).toString('base64')}`;
const BIN_BITS = 4;

const input = (i: number): TargetInput => ({
  path: `bulk/1.0.${i}/model.onnx`,
  length: 1000 + i,
  sha256: i.toString(16).padStart(64, '0'),
  custom: { model: 'bulk', version: `1.0.${i}`, runtime: 'onnx' },
});

describe.each(databaseBackends())('TUF hash bins on %s', (backend) => {
  let t: TestApp;
  let tuf: TufRepositoryService;
  const dirs: string[] = [];

  async function device(root?: string, metadataDir?: string): Promise<{ updater: Updater; fetcher: RecordingFetcher; metadataDir: string }> {
    const dir = metadataDir ?? (await mkdtemp(join(tmpdir(), 'fleetline-bins-md-')));
    if (!metadataDir) {
      dirs.push(dir);
      await writeFile(join(dir, 'root.json'), root ?? (await tuf.trustedRoot()));
    }
    const fetcher = new RecordingFetcher(AUTH);
    const updater = new Updater({
      metadataDir: dir,
      targetDir: dir,
      metadataBaseUrl: `${t.baseUrl}/api/v1/tuf/metadata`,
      targetBaseUrl: `${t.baseUrl}/api/v1/tuf/targets`,
      fetcher,
    });
    return { updater, fetcher, metadataDir: dir };
  }

  async function rowCount(): Promise<number> {
    const [row] = (await t.app.get(DataSource).query(`SELECT count(*)::int AS n FROM tuf_metadata`)) as { n: number }[];
    return row!.n;
  }

  beforeAll(async () => {
    // Bin mechanics with any path: ARTIFACT_ACCESS=fleet; what `assigned` lets a device read is its own test.
    t = await startTestApp(backend, { TUF_BIN_COUNT: String(2 ** BIN_BITS), ARTIFACT_ACCESS: 'fleet' });
    tuf = t.app.get(TufRepositoryService);
    await t.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, [DEVICE_ID, hashSecret(DEVICE_SECRET)]);
    expect((await apiClient(t.baseUrl, t.adminKey).post('/api/v1/models', { name: 'detector' })).status).toBe(201);
    const form = new FormData();
    form.append('version', '1.0.0');
    form.append('file', new Blob([randomBytes(256)]), 'model.onnx');
    const res = await fetch(`${t.baseUrl}/api/v1/models/detector/versions`, { method: 'POST', headers: { authorization: `Bearer ${t.adminKey}` }, body: form });
    expect(res.status).toBe(201);
    await t.app
      .get(DataSource)
      .query(`INSERT INTO device_models (device_id, model, desired_version, desired_revision) VALUES ($1, 'detector', '1.0.0', 1)`, [DEVICE_ID]);
    tuf.forgetCached();
  });
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    await t.close();
  });

  it('a device refresh downloads root, timestamp, snapshot, top-level targets and the one bin on the path', async () => {
    const { updater, fetcher } = await device();
    await updater.refresh();
    expect(await updater.getTargetInfo('detector/1.0.0/model.onnx')).toMatchObject({ length: 256 });
    const snapshot = parseSnapshot((await tuf.latest('snapshot')).json);
    const bin = binOf('detector/1.0.0/model.onnx', BIN_BITS);
    const binVersion = snapshot.signed.meta[`${bin}.json`]!.version;
    const targetsVersion = snapshot.signed.meta['targets.json']!.version;
    expect(fetcher.files).toEqual([
      '2.root.json',
      'timestamp.json',
      `${snapshot.signed.version}.snapshot.json`,
      `${targetsVersion}.targets.json`,
      `${binVersion}.${bin}.json`,
    ]);
    expect(await updater.getTargetInfo('detector/9.9.9/model.onnx')).toBeUndefined();
  });

  it('serves a device only the bins its assigned versions have targets in (ARTIFACT_ACCESS=assigned)', async () => {
    const config = t.app.get<AppConfig>(APP_CONFIG);
    config.artifactAccess = 'assigned';
    const own = binOf('detector/1.0.0/model.onnx', BIN_BITS);
    const other = binNames(BIN_BITS).find((b) => b !== own)!;
    const get = (file: string): Promise<Response> => fetch(`${t.baseUrl}/api/v1/tuf/metadata/${file}`, { headers: { authorization: AUTH } });
    expect((await get(`${own}.json`)).status).toBe(200);
    const refused = await get(`${other}.json`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { code: string }).code).toBe('target-not-assigned');
    // The top-level roles stay readable: they list no target.
    for (const role of ['timestamp', 'snapshot', 'targets']) expect((await get(`${role}.json`)).status).toBe(200);
    config.artifactAccess = 'fleet';
    expect((await get(`${other}.json`)).status).toBe(200);
  });

  it('publishing many targets at once signs each touched bin once, then snapshot and timestamp; top-level targets stays', async () => {
    const before = parseSnapshot((await tuf.latest('snapshot')).json);
    const beforeBins = binVersionsOf(before.signed.meta);
    const added = Array.from({ length: 40 }, (_, i) => input(i));
    const touched = new Set(added.map((a) => binOf(a.path, BIN_BITS)));
    const rows = await rowCount();
    await t.app.get(DataSource).transaction((manager) => tuf.publishTargets(manager, added));
    tuf.forgetCached();
    expect(await rowCount()).toBe(rows + touched.size + 2);
    const after = parseSnapshot((await tuf.latest('snapshot')).json);
    expect(after.signed.version).toBe(before.signed.version + 1);
    expect(after.signed.meta['targets.json']).toEqual(before.signed.meta['targets.json']);
    for (const [name, version] of binVersionsOf(after.signed.meta)) expect(version).toBe(beforeBins.get(name)! + (touched.has(name) ? 1 : 0));

    const { updater } = await device();
    await updater.refresh();
    for (const a of [added[0]!, added[39]!]) expect(await updater.getTargetInfo(a.path)).toMatchObject({ length: a.length, hashes: { sha256: a.sha256 } });
    expect(await updater.getTargetInfo('detector/1.0.0/model.onnx')).toBeDefined();
  });

  it('moves a flat repository into bins at start-up, once, and devices that trusted the flat targets keep resolving', async () => {
    // A repository from before bins: every target in top-level targets, snapshot without bins.
    const keyDir = join(t.dataDir, 'tuf-keys');
    const key = async (file: string) => roleKeyFromPrivate(createPrivateKey(await readFile(join(keyDir, file), 'utf8')));
    const targetsRow = await tuf.latest('targets');
    const snapshotRow = await tuf.latest('snapshot');
    const bins = await new TufMetadataRepository(t.app.get(DataSource)).atVersions(
      t.app.get(DataSource).manager,
      binVersionsOf(parseSnapshot(snapshotRow.json).signed.meta),
    );
    const everything = Object.assign({}, ...bins.map((b) => parseTargets(b.json).signed.toJSON()['targets'] as object)) as Record<string, unknown>;
    expect(Object.keys(everything)).toHaveLength(41);
    const flat = new Metadata(
      Targets.fromJSON({
        _type: 'targets',
        spec_version: '1.0.31',
        version: targetsRow.version + 1,
        expires: tufTime(new Date(Date.now() + 90 * 86_400_000)),
        targets: everything,
      } as Parameters<typeof Targets.fromJSON>[0]),
    );
    flat.sign((await key('targets.key.pem')).sign, false);
    const flatRow = { role: 'targets', version: flat.signed.version, json: JSON.stringify(flat.toJSON()), expiresAt: new Date(flat.signed.expires) };
    const snapshot = signNextSnapshot(snapshotRow.version, flat.signed.version, await key('snapshot.key.pem'), new Date());
    const timestamp = signNextTimestamp((await tuf.latest('timestamp')).version, snapshot, await key('timestamp.key.pem'), new Date());
    await new TufMetadataRepository(t.app.get(DataSource)).insert(t.app.get(DataSource).manager, [flatRow, snapshot, timestamp]);
    tuf.forgetCached();

    const old = await device();
    await old.updater.refresh();
    expect(await old.updater.getTargetInfo(input(7).path)).toBeDefined();
    expect(old.fetcher.files).not.toContainEqual(expect.stringContaining('bins-'));

    // The upgrade: a replica starts (same database and keys) and moves the targets into bins.
    const rootBefore = (await tuf.latest('root')).json;
    const replica = new TufRepositoryService(t.app.get<AppConfig>(APP_CONFIG), t.app.get(DataSource), new TufMetadataRepository(t.app.get(DataSource)));
    await replica.initialise();
    const moved = parseTargets((await replica.latest('targets')).json);
    expect(moved.signed.version).toBe(flat.signed.version + 1);
    expect(moved.signed.targets).toEqual({});
    expect(moved.signed.delegations?.succinctRoles?.bitLength).toBe(BIN_BITS);
    expect((await replica.latest('root')).json).toBe(rootBefore);
    const rows = await rowCount();
    await replica.initialise();
    expect(await rowCount()).toBe(rows);
    tuf.forgetCached();

    // The device that trusted the flat targets walks forward with the root it has.
    const again = await device(undefined, old.metadataDir);
    await again.updater.refresh();
    for (const i of [0, 7, 39]) expect(await again.updater.getTargetInfo(input(i).path)).toMatchObject({ length: input(i).length });
    expect(await again.updater.getTargetInfo('detector/1.0.0/model.onnx')).toBeDefined();
    const paths = [0, 7, 39].map((i) => input(i).path).concat('detector/1.0.0/model.onnx');
    expect(again.fetcher.files.filter((f) => f.includes('.bins-'))).toHaveLength(new Set(paths.map((p) => binOf(p, BIN_BITS))).size);
  });

  it('renews bins close to expiry along with a new snapshot', async () => {
    const before = binVersionsOf(parseSnapshot((await tuf.latest('snapshot')).json).signed.meta);
    expect(await tuf.renewExpiring(new Date(Date.now() + 61 * 86_400_000))).toEqual(['targets', 'bins', 'snapshot', 'timestamp']);
    tuf.forgetCached();
    const after = binVersionsOf(parseSnapshot((await tuf.latest('snapshot')).json).signed.meta);
    expect(after.size).toBe(2 ** BIN_BITS);
    for (const [name, version] of after) expect(version).toBe(before.get(name)! + 1);
    const { updater } = await device();
    await updater.refresh();
    expect(await updater.getTargetInfo(input(3).path)).toBeDefined();
  });

  it('starts a replica whose bins key is not the one targets delegate to, which then refuses to sign uploads and moves nothing', async () => {
    const config = t.app.get<AppConfig>(APP_CONFIG);
    const otherDir = await mkdtemp(join(tmpdir(), 'fleetline-bins-replica-'));
    dirs.push(otherDir);
    await mkdir(join(otherDir, 'tuf-keys'), { mode: 0o700 });
    for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
      await copyFile(join(t.dataDir, 'tuf-keys', `${role}.key.pem`), join(otherDir, 'tuf-keys', `${role}.key.pem`));
    }
    const replica = new TufRepositoryService({ ...config, dataDir: otherDir }, t.app.get(DataSource), new TufMetadataRepository(t.app.get(DataSource)));
    const before = await rowCount();
    await replica.initialise();
    expect(await rowCount()).toBe(before);
    await expect(t.app.get(DataSource).transaction((m) => replica.publishTargets(m, [input(90)]))).rejects.toMatchObject({ code: 'signing-key-offline' });
    expect(await rowCount()).toBe(before);
  });

  it('refuses to start in TUF_KEYS=offline on a repository whose targets delegate to bins', async () => {
    const otherDir = await mkdtemp(join(tmpdir(), 'fleetline-bins-offline-'));
    dirs.push(otherDir);
    await mkdir(join(otherDir, 'tuf-keys'), { mode: 0o700 });
    for (const role of ['snapshot', 'timestamp']) {
      await copyFile(join(t.dataDir, 'tuf-keys', `${role}.key.pem`), join(otherDir, 'tuf-keys', `${role}.key.pem`));
    }
    const config = { ...t.app.get<AppConfig>(APP_CONFIG), dataDir: otherDir, tufKeys: 'offline' as const };
    const replica = new TufRepositoryService(config, t.app.get(DataSource), new TufMetadataRepository(t.app.get(DataSource)));
    await expect(replica.initialise()).rejects.toThrow(/TUF_KEYS=offline but targets v\d+ delegates to hash bins/);
  });

  it('moves every bin to a staged replacement bins key at start and keeps devices resolving', async () => {
    const keyDir = join(t.dataDir, 'tuf-keys');
    const next = generateKeyPairSync('ed25519').privateKey;
    await writeFile(join(keyDir, 'bins.next.key.pem'), next.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: 0o600 });
    const nextId = roleKeyFromPrivate(next).key.keyID;
    const replica = new TufRepositoryService(t.app.get<AppConfig>(APP_CONFIG), t.app.get(DataSource), new TufMetadataRepository(t.app.get(DataSource)));
    await replica.initialise();
    expect(succinctRolesOf(parseTargets((await replica.latest('targets')).json))?.keyIDs).toEqual([nextId]);
    expect(roleKeyFromPrivate(createPrivateKey(await readFile(join(keyDir, 'bins.key.pem'), 'utf8'))).key.keyID).toBe(nextId);
    await expect(readFile(join(keyDir, 'bins.next.key.pem'))).rejects.toThrow();
    // The replica that was running picks the new key up for its next upload.
    await t.app.get(DataSource).transaction((manager) => tuf.publishTargets(manager, [input(1000)]));
    tuf.forgetCached();
    const { updater } = await device();
    await updater.refresh();
    for (const i of [3, 1000]) expect(await updater.getTargetInfo(input(i).path)).toMatchObject({ length: input(i).length });
  });
});
