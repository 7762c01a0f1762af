import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, rm, writeFile, mkdir, readlink, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DesiredModel, UpdateState } from '@fleetline/protocol';
import { TufRepoFixture, type PublishedTarget } from '../testing/tuf-repo.fixture.js';
import { TargetServerFixture } from '../testing/target-server.fixture.js';
import { TufDownloader } from '../download/tuf-downloader.js';
import { FsModelStore } from '../install/model-store.js';
import { RuntimeRegistry } from '../runtime/model-runtime.js';
import { commandRuntimeFactory } from '../runtime/command-runtime.js';
import { FileStateStore, type StateStore } from '../storage/store.js';
import { Reconciler, type ReportDraft } from './reconciler.js';
import type { JournalEntry } from '../update/journal.js';

const DEVICE = 'dev-rec';
const SECRET = 'k'.repeat(40);
// Health check: the real `command` runtime runs node against the model file; "BAD" models fail.
const HEALTH_SCRIPT = "const b=require('fs').readFileSync(process.argv[1]);process.exit(b.subarray(0,3).toString()==='BAD'?3:0)";

class SimulatedCrash extends Error {}

/** File store that "loses power" right after durably writing a journal entry in a given state. */
class CrashingStore implements StateStore {
  dead = false;
  constructor(
    private readonly inner: StateStore,
    private readonly crashOn: (key: string, value: unknown) => boolean,
  ) {}
  read<T>(key: string): Promise<T | undefined> {
    return this.inner.read<T>(key);
  }
  async write(key: string, value: unknown): Promise<void> {
    if (this.dead) throw new SimulatedCrash('process is dead');
    await this.inner.write(key, value);
    if (this.crashOn(key, value)) {
      this.dead = true;
      throw new SimulatedCrash(`crash after journaling ${(value as JournalEntry).state}`);
    }
  }
  async delete(key: string): Promise<void> {
    if (this.dead) throw new SimulatedCrash('process is dead');
    await this.inner.delete(key);
  }
  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }
}

describe('Reconciler with real TUF downloads, files and the command runtime', () => {
  const repo = new TufRepoFixture();
  const server = new TargetServerFixture(repo, new Map([[DEVICE, SECRET]]));
  const targets: Record<string, PublishedTarget> = {};
  const roots: string[] = [];

  beforeAll(async () => {
    targets['1.0.0'] = repo.addTarget('resnet/1.0.0/model.onnx', Buffer.concat([Buffer.from('OK1'), randomBytes(50_000)]));
    targets['1.1.0'] = repo.addTarget('resnet/1.1.0/model.onnx', Buffer.concat([Buffer.from('OK2'), randomBytes(60_000)]));
    targets['1.2.0'] = repo.addTarget('resnet/1.2.0/model.onnx', Buffer.concat([Buffer.from('BAD'), randomBytes(40_000)]));
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
    await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
  });

  async function newDataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-rec-'));
    roots.push(dir);
    await mkdir(join(dir, 'tuf'));
    await writeFile(join(dir, 'tuf', 'root.json'), repo.rootJson);
    return dir;
  }

  function desired(version: string, revision: number, extra: Partial<DesiredModel> = {}): DesiredModel {
    const t = targets[version]!;
    return {
      v: 1,
      model: 'resnet',
      version,
      revision,
      action: 'install',
      artifacts: [{ targetPath: t.targetPath, sha256: t.sha256, length: t.length, runtime: 'command', compatibility: {} }],
      assignedAt: new Date().toISOString(),
      ...extra,
    };
  }

  function reconciler(dir: string, reports: ReportDraft[], store?: StateStore, maxActivationRestarts = 3): Reconciler {
    const runtimes = new RuntimeRegistry().register(commandRuntimeFactory({ command: process.execPath, args: ['-e', HEALTH_SCRIPT], timeoutMs: 10_000 }));
    return new Reconciler({
      store: store ?? new FileStateStore(join(dir, 'state')),
      models: new FsModelStore(join(dir, 'models')),
      downloader: new TufDownloader({
        deviceId: DEVICE,
        secret: SECRET,
        metadataUrl: server.metadataUrl,
        targetsUrl: server.targetsUrl,
        metadataDir: join(dir, 'tuf'),
        downloadDir: join(dir, 'downloads'),
        reserveBytes: 0,
      }),
      runtimes,
      capabilities: { hardwareClass: 'x86_64', accelerators: [], agentVersion: '0.1.0', runtimes: runtimes.versions() },
      report: async (d) => {
        reports.push(d);
      },
      maxActivationRestarts,
    });
  }

  async function apply(r: Reconciler, d: DesiredModel): Promise<void> {
    await r.setDesired(d.model, d);
    await r.settled();
  }

  async function active(dir: string): Promise<string | null> {
    return readlink(join(dir, 'models', 'resnet', 'current')).then(
      (t) => t.split('/').pop()!,
      () => null,
    );
  }

  it('downloads, verifies, installs, activates, health-checks and commits; then rolls back a bad version', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const r = reconciler(dir, reports);
    await apply(r, desired('1.0.0', 1));
    expect(reports.map((x) => x.state)).toEqual(['downloading', 'verifying', 'installing', 'activating', 'health-checking', 'committed']);
    expect(await active(dir)).toBe('1.0.0');
    expect((await readFile(join(dir, 'models', 'resnet', 'current', 'model.onnx'))).subarray(0, 3).toString()).toBe('OK1');

    reports.length = 0;
    await apply(r, desired('1.1.0', 2));
    expect(reports.at(-1)).toMatchObject({ state: 'committed', version: '1.1.0', activeVersion: '1.1.0', previousVersion: '1.0.0' });

    reports.length = 0;
    await apply(r, desired('1.2.0', 3, { rolloutId: 'ro-1' }));
    expect(reports.map((x) => x.state)).toEqual(['downloading', 'verifying', 'installing', 'activating', 'health-checking', 'rolling-back', 'rolled-back']);
    expect(reports.at(-1)).toMatchObject({
      version: '1.2.0',
      activeVersion: '1.1.0',
      previousVersion: '1.0.0',
      rolloutId: 'ro-1',
      failure: { code: 'health-check-failed' },
    });
    expect(await active(dir)).toBe('1.1.0');
    expect((await readdir(join(dir, 'models', 'resnet', 'versions'))).sort()).toEqual(['1.0.0', '1.1.0']);

    // The same failed revision is not retried; a re-delivery changes nothing.
    reports.length = 0;
    await apply(r, desired('1.2.0', 3));
    expect(reports).toEqual([]);
    // Re-assigning the active version just acknowledges it.
    await apply(r, desired('1.1.0', 4));
    expect(reports.map((x) => x.state)).toEqual(['committed']);
  });

  it('reports incompatible without downloading anything', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const before = server.requests.length;
    const d = desired('1.0.0', 1);
    d.artifacts[0]!.compatibility = { hardwareClasses: ['jetson-orin'] };
    await apply(reconciler(dir, reports), d);
    expect(reports).toEqual([expect.objectContaining({ state: 'incompatible', failure: expect.objectContaining({ code: 'incompatible-hardware' }) })]);
    expect(server.requests.length).toBe(before);
  });

  it('stops a download-only assignment at downloaded until the install command', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const r = reconciler(dir, reports);
    await apply(r, desired('1.0.0', 1, { action: 'download-only' }));
    expect(reports.map((x) => x.state)).toEqual(['downloading', 'verifying', 'downloaded']);
    expect(await active(dir)).toBeNull();
    expect(await r.requestInstall('resnet', '1.0.0', 1)).toBe(true);
    await r.settled();
    expect(reports.map((x) => x.state).slice(3)).toEqual(['verifying', 'installing', 'activating', 'health-checking', 'committed']);
    expect(await active(dir)).toBe('1.0.0');
  });

  const crashStates: UpdateState[] = ['downloading', 'verifying', 'installing', 'activating', 'health-checking', 'committed'];
  it.each(crashStates)('recovers after a crash right after journaling %s', async (state) => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));

    const file = new FileStateStore(join(dir, 'state'));
    const crashing = new CrashingStore(
      file,
      (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === state && (value as JournalEntry).desired.version === '1.1.0',
    );
    const first = reconciler(dir, [], crashing);
    await apply(first, desired('1.1.0', 2));
    expect(crashing.dead).toBe(true);
    expect((await file.read<JournalEntry>('journal/resnet'))!.state).toBe(state);
    await first.stop();

    // Next start: recover from the journal, then the broker re-delivers the retained desired state.
    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await apply(second, desired('1.1.0', 2));
    const entry = (await file.read<JournalEntry>('journal/resnet'))!;
    expect(entry.state).toBe('committed');
    expect(await active(dir)).toBe('1.1.0');
    if (state !== 'committed') expect(reports.at(-1)).toMatchObject({ state: 'committed', version: '1.1.0', previousVersion: '1.0.0' });
  });

  it('recovers after a crash while rolling back', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.1.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    const crashing = new CrashingStore(file, (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === 'rolling-back');
    const first = reconciler(dir, [], crashing);
    await apply(first, desired('1.2.0', 2));
    await first.stop();
    expect(await active(dir)).toBe('1.2.0'); // the crash hit before the pointer moved back

    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await second.settled();
    expect(reports.at(-1)).toMatchObject({ state: 'rolled-back', activeVersion: '1.1.0', failure: { code: 'health-check-failed' } });
    expect(await active(dir)).toBe('1.1.0');
  });

  it('breaks a boot loop: three restarts in health-checking roll back with boot-loop', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    const crashInHealthCheck = (): CrashingStore =>
      new CrashingStore(file, (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === 'health-checking');

    const first = reconciler(dir, [], crashInHealthCheck());
    await apply(first, desired('1.1.0', 2));
    await first.stop();
    for (let restart = 1; restart <= 2; restart++) {
      const r = reconciler(dir, [], crashInHealthCheck());
      // Recovery re-journals health-checking with the bumped counter; the "crash" hits right there.
      await expect(r.recover()).rejects.toBeInstanceOf(SimulatedCrash);
      await r.settled();
      await r.stop();
      expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'health-checking', restarts: restart });
    }
    const reports: ReportDraft[] = [];
    const last = reconciler(dir, reports, crashInHealthCheck());
    await last.recover();
    await last.settled();
    expect(reports.map((x) => x.state)).toEqual(['rolling-back', 'rolled-back']);
    expect(reports.at(-1)).toMatchObject({ failure: { code: 'boot-loop' }, activeVersion: '1.0.0' });
    expect(await active(dir)).toBe('1.0.0');
  });

  it('reports verification-failed for a tampered target and keeps the active version', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const r = reconciler(dir, reports);
    await apply(r, desired('1.0.0', 1));
    const t = targets['1.1.0']!;
    server.tampered.set(t.servedPath, Buffer.alloc(t.length, 7));
    try {
      reports.length = 0;
      await apply(r, desired('1.1.0', 2));
    } finally {
      server.tampered.clear();
    }
    expect(reports.map((x) => x.state)).toEqual(['downloading', 'failed']);
    expect(reports.at(-1)).toMatchObject({ failure: { code: 'verification-failed' }, activeVersion: '1.0.0' });
    expect(await readdir(join(dir, 'models', 'resnet', 'versions'))).toEqual(['1.0.0']);
  });
});
