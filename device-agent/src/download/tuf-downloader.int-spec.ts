import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from '@jest/globals';
import { mkdtemp, rm, writeFile, mkdir, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DesiredModel } from '@fleetline/protocol';
import { TufRepoFixture, type PublishedTarget } from '../testing/tuf-repo.fixture.js';
import { TargetServerFixture } from '../testing/target-server.fixture.js';
import { TufDownloader } from './tuf-downloader.js';
import { UpdateFailure } from '../update/update-failure.js';

const DEVICE = 'dev-1';
const SECRET = 's'.repeat(40);

function desiredFor(t: PublishedTarget, version = '1.0.0'): DesiredModel {
  return {
    v: 1,
    model: 'resnet',
    version,
    revision: 1,
    action: 'install',
    artifacts: [{ targetPath: t.targetPath, sha256: t.sha256, length: t.length, runtime: 'command', compatibility: {} }],
    assignedAt: new Date().toISOString(),
  };
}

describe('TufDownloader (real TUF repository over HTTP)', () => {
  const repo = new TufRepoFixture();
  const server = new TargetServerFixture(repo, new Map([[DEVICE, SECRET]]));
  const bytes = randomBytes(300_000);
  let target: PublishedTarget;
  let dir: string;

  beforeAll(async () => {
    target = repo.addTarget('resnet/1.0.0/model.bin', bytes);
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-dl-'));
    await mkdir(join(dir, 'tuf'));
    await writeFile(join(dir, 'tuf', 'root.json'), repo.rootJson);
    server.requests.length = 0;
    server.cutCount = 0;
    server.tampered.clear();
    server.failTargetsWith = undefined;
    server.busyCount = 0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function downloader(secret = SECRET): TufDownloader {
    return new TufDownloader({
      deviceId: DEVICE,
      secret,
      metadataUrl: server.metadataUrl,
      targetsUrl: server.targetsUrl,
      metadataDir: join(dir, 'tuf'),
      downloadDir: join(dir, 'downloads'),
      reserveBytes: 0,
    });
  }
  const ctx = (): { signal: AbortSignal; deadline: number } => ({ signal: new AbortController().signal, deadline: Date.now() + 30_000 });

  it('downloads and verifies a signed target with Basic auth on every request', async () => {
    const d = downloader();
    const progress: number[] = [];
    await d.fetch(desiredFor(target), { ...ctx(), onProgress: (p) => progress.push(p.bytes) });
    const staged = await d.verify(desiredFor(target));
    expect(staged).toHaveLength(1);
    expect(staged[0]!.fileName).toBe('model.bin');
    expect((await stat(staged[0]!.path!)).size).toBe(bytes.length);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(server.requests.every((r) => r.status !== 401)).toBe(true);
    expect(server.requests.some((r) => r.path === `/tuf/targets/${target.servedPath}`)).toBe(true);
    expect(server.requests.some((r) => r.path === '/tuf/metadata/timestamp.json')).toBe(true);
  });

  it('accepts base URLs with a trailing slash and still resumes', async () => {
    server.cutAfterBytes = 50_000;
    server.cutCount = 1;
    const d = new TufDownloader({
      deviceId: DEVICE,
      secret: SECRET,
      metadataUrl: `${server.metadataUrl}/`,
      targetsUrl: `${server.targetsUrl}/`,
      metadataDir: join(dir, 'tuf'),
      downloadDir: join(dir, 'downloads'),
      reserveBytes: 0,
    });
    await d.fetch(desiredFor(target), ctx());
    await expect(d.verify(desiredFor(target))).resolves.toHaveLength(1);
    expect(server.requests.filter((r) => r.path.startsWith('/tuf/targets/')).map((r) => r.status)).toEqual([200, 206]);
  });

  it('refuses a tampered target and leaves nothing staged', async () => {
    const evil = Buffer.from(bytes);
    evil[1000] = evil[1000]! ^ 0xff;
    server.tampered.set(target.servedPath, evil);
    const d = downloader();
    const err = await d.fetch(desiredFor(target), ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpdateFailure);
    expect((err as UpdateFailure).code).toBe('verification-failed');
    await expect(d.verify(desiredFor(target))).rejects.toMatchObject({ code: 'verification-failed' });
    const left = await readdir(join(dir, 'downloads', 'partial')).catch(() => []);
    expect(left).toEqual([]);
  });

  it('refuses an assignment whose hash differs from the signed metadata', async () => {
    const d = downloader();
    const lying = desiredFor({ ...target, sha256: 'a'.repeat(64) });
    await expect(d.fetch(lying, ctx())).rejects.toMatchObject({ code: 'verification-failed' });
  });

  it('fails with download-failed when credentials are wrong', async () => {
    await expect(downloader('x'.repeat(40)).fetch(desiredFor(target), ctx())).rejects.toMatchObject({ code: 'download-failed' });
  });

  it('resumes with Range after the server cuts the connection mid-body', async () => {
    server.cutAfterBytes = 100_000;
    server.cutCount = 2;
    const d = downloader();
    await d.fetch(desiredFor(target), ctx());
    await expect(d.verify(desiredFor(target))).resolves.toHaveLength(1);
    const targetRequests = server.requests.filter((r) => r.path.startsWith('/tuf/targets/'));
    expect(targetRequests.length).toBe(3);
    expect(targetRequests[0]!.range).toBeUndefined();
    expect(targetRequests[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(targetRequests[1]!.status).toBe(206);
    expect(Number(/bytes=(\d+)-/.exec(targetRequests[1]!.range!)![1])).toBeGreaterThan(0);
  });

  it('resumes a partial file left by a previous agent process', async () => {
    // A previous run got 120 kB before dying: the partial file is where the fetcher keeps it.
    const partialDir = join(dir, 'downloads', 'partial');
    await mkdir(partialDir, { recursive: true });
    await writeFile(join(partialDir, `${target.servedPath.replace(/\//g, '__')}.part`), bytes.subarray(0, 120_000));
    const d = downloader();
    await d.fetch(desiredFor(target), ctx());
    await expect(d.verify(desiredFor(target))).resolves.toHaveLength(1);
    const targetRequests = server.requests.filter((r) => r.path.startsWith('/tuf/targets/'));
    expect(targetRequests).toHaveLength(1);
    expect(targetRequests[0]!.range).toBe('bytes=120000-');
  });

  it('waits out busy answers (503 + Retry-After) without spending its attempts, no sooner than told', async () => {
    // More busy answers than the fetcher's 6 attempts: a server shedding load must not fail updates.
    server.busyCount = 7;
    const d = downloader();
    await d.fetch(desiredFor(target), ctx());
    await expect(d.verify(desiredFor(target))).resolves.toHaveLength(1);
    const targetRequests = server.requests.filter((r) => r.path.startsWith('/tuf/targets/'));
    expect(targetRequests.map((r) => r.status)).toEqual([503, 503, 503, 503, 503, 503, 503, 200]);
    for (let i = 1; i < targetRequests.length; i++) expect(targetRequests[i]!.at - targetRequests[i - 1]!.at).toBeGreaterThanOrEqual(990);
  }, 60_000);

  it('gives up with download-failed when the target keeps failing', async () => {
    server.failTargetsWith = 503;
    await expect(downloader().fetch(desiredFor(target), ctx())).rejects.toMatchObject({ code: 'download-failed' });
  }, 60_000);
});
