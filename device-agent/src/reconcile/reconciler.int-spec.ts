import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, rm, writeFile, mkdir, readlink, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { decodePayload, encodePayload, UPDATE_STATES, updateReportSchema, type DesiredModel, type UpdateState } from '@fleetline/protocol';
import { TufRepoFixture, type PublishedTarget } from '../testing/tuf-repo.fixture.js';
import { desiredTarget } from '../testing/agent-options.fixture.js';
import { TargetServerFixture } from '../testing/target-server.fixture.js';
import { TufDownloader } from '../download/tuf-downloader.js';
import { FsModelStore, type ModelPointers, type ModelStore } from '../install/model-store.js';
import { RuntimeRegistry } from '../runtime/model-runtime.js';
import { commandRuntimeFactory } from '../runtime/command-runtime.js';
import { FileStateStore, type StateStore } from '../storage/store.js';
import { Reconciler, type ReportDraft } from './reconciler.js';
import type { JournalEntry } from '../update/journal.js';
import type { ArtifactDownloader } from '../download/downloader.js';

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
    targets['1.3.0'] = repo.addTarget('resnet/1.3.0/model.onnx', Buffer.concat([Buffer.from('OK3'), randomBytes(30_000)]));
    // Signed by the same targets key, but a file of another model.
    targets['other'] = repo.addTarget('classifier/1.0.0/model.onnx', Buffer.concat([Buffer.from('OKX'), randomBytes(20_000)]));
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

  const desired = (version: string, revision: number, extra: Partial<DesiredModel> = {}): DesiredModel =>
    desiredTarget(targets[version]!, 'resnet', version, revision, extra);

  interface ReconcilerOverrides {
    now?: () => Date;
    wrapDownloader?: (inner: ArtifactDownloader) => ArtifactDownloader;
    report?: (draft: ReportDraft) => Promise<void>;
    wrapModels?: (inner: ModelStore) => ModelStore;
    resyncFallbackMs?: number;
  }

  function reconciler(dir: string, reports: ReportDraft[], store?: StateStore, maxActivationRestarts = 3, overrides: ReconcilerOverrides = {}): Reconciler {
    const downloader = new TufDownloader({
      deviceId: DEVICE,
      secret: SECRET,
      metadataUrl: server.metadataUrl,
      targetsUrl: server.targetsUrl,
      metadataDir: join(dir, 'tuf'),
      downloadDir: join(dir, 'downloads'),
      reserveBytes: 0,
    });
    const runtimes = new RuntimeRegistry().register(commandRuntimeFactory({ command: process.execPath, args: ['-e', HEALTH_SCRIPT], timeoutMs: 10_000 }));
    return new Reconciler({
      store: store ?? new FileStateStore(join(dir, 'state')),
      models: overrides.wrapModels ? overrides.wrapModels(new FsModelStore(join(dir, 'models'))) : new FsModelStore(join(dir, 'models')),
      downloader: overrides.wrapDownloader ? overrides.wrapDownloader(downloader) : downloader,
      runtimes,
      capabilities: { hardwareClass: 'x86_64', accelerators: [], agentVersion: '0.1.0', runtimes: runtimes.versions() },
      report:
        overrides.report ??
        (async (d): Promise<void> => {
          reports.push(d);
        }),
      maxActivationRestarts,
      ...(overrides.now ? { now: overrides.now } : {}),
      ...(overrides.resyncFallbackMs !== undefined ? { resyncFallbackMs: overrides.resyncFallbackMs } : {}),
    });
  }

  async function apply(r: Reconciler, d: DesiredModel): Promise<void> {
    await r.setDesired(d.model, d);
    await r.settled();
  }

  async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 10));
    }
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

  it("refuses with target-mismatch, fetching and installing nothing, a desired state whose artifact is another model's or version's signed target", async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    let downloader: ArtifactDownloader | undefined;
    const r = reconciler(dir, reports, undefined, 3, { wrapDownloader: (inner) => (downloader = inner) });
    await apply(r, desired('1.0.0', 1));
    const before = server.requests.length;
    for (const [revision, swapped] of [
      [2, targets['other']!],
      [3, targets['1.2.0']!],
    ] as const) {
      reports.length = 0;
      // Version 1.1.0 assigned, but the artifact points at a signed target of something else.
      await apply(
        r,
        desired('1.1.0', revision, {
          artifacts: [{ targetPath: swapped.targetPath, sha256: swapped.sha256, length: swapped.length, runtime: 'command', compatibility: {} }],
        }),
      );
      expect(reports).toEqual([
        expect.objectContaining({ state: 'failed', version: '1.1.0', activeVersion: '1.0.0', failure: expect.objectContaining({ code: 'target-mismatch' }) }),
      ]);
    }
    expect(server.requests.length).toBe(before);
    expect(await active(dir)).toBe('1.0.0');
    expect(await readdir(join(dir, 'models', 'resnet', 'versions'))).toEqual(['1.0.0']);
    // The downloader refuses it too, for any other caller.
    const swapped = targets['other']!;
    await expect(
      downloader!.fetch(
        desired('1.1.0', 4, {
          artifacts: [{ targetPath: swapped.targetPath, sha256: swapped.sha256, length: swapped.length, runtime: 'command', compatibility: {} }],
        }),
        { signal: new AbortController().signal, deadline: Date.now() + 10_000 },
      ),
    ).rejects.toMatchObject({ code: 'target-mismatch' });
    expect(server.requests.length).toBe(before);
  });

  describe('a version with several builds', () => {
    const builds: Record<string, PublishedTarget> = {};
    beforeAll(() => {
      for (const name of ['npu-int8', 'gpu-fp16', 'cpu-fp32']) {
        builds[name] = repo.addTarget(`resnet/2.0.0/${name}.bin`, Buffer.concat([Buffer.from('OK'), Buffer.from(name), randomBytes(20_000)]));
      }
    });
    const multi = (revision: number, extra: Partial<DesiredModel> = {}): DesiredModel => ({
      v: 1,
      model: 'resnet',
      version: '2.0.0',
      revision,
      action: 'install',
      artifacts: [
        { ...ref(builds['npu-int8']!), variant: 'npu-int8', compatibility: { accelerators: ['npu'] } },
        { ...ref(builds['gpu-fp16']!), variant: 'gpu-fp16', compatibility: { accelerators: ['cuda'] } },
        { ...ref(builds['cpu-fp32']!), variant: 'cpu-fp32', compatibility: { hardwareClasses: ['x86_64'] } },
      ],
      assignedAt: new Date().toISOString(),
      ...extra,
    });
    const ref = (t: PublishedTarget): DesiredModel['artifacts'][number] => ({
      targetPath: t.targetPath,
      sha256: t.sha256,
      length: t.length,
      runtime: 'command',
      compatibility: {},
    });

    it('downloads, verifies and installs only the best build that fits, and names it in its reports', async () => {
      const dir = await newDataDir();
      const reports: ReportDraft[] = [];
      const before = server.requests.length;
      await apply(reconciler(dir, reports), multi(1));
      expect(reports.map((x) => x.state)).toEqual(['downloading', 'verifying', 'installing', 'activating', 'health-checking', 'committed']);
      expect(reports.every((x) => x.variant === 'cpu-fp32')).toBe(true);
      const fetched = server.requests.slice(before).map((q) => q.path);
      expect(fetched.some((p) => p.includes('cpu-fp32.bin'))).toBe(true);
      expect(fetched.some((p) => p.includes('npu-int8.bin') || p.includes('gpu-fp16.bin'))).toBe(false);
      expect(await readdir(join(dir, 'models', 'resnet', 'current'))).toEqual(['cpu-fp32.bin']);
    });

    it('refuses, before downloading, a build chosen for it that does not fit', async () => {
      const dir = await newDataDir();
      const reports: ReportDraft[] = [];
      const before = server.requests.length;
      const chosen = multi(1, { variant: 'npu-int8' });
      await apply(reconciler(dir, reports), { ...chosen, artifacts: [chosen.artifacts[0]!] });
      expect(reports).toEqual([
        expect.objectContaining({ state: 'incompatible', failure: { code: 'incompatible-hardware', message: 'no build fits: needs npu' } }),
      ]);
      expect(reports[0]!.variant).toBeUndefined();
      expect(server.requests.length).toBe(before);
    });

    it("refuses a version no build of which fits, with each build's reason", async () => {
      const dir = await newDataDir();
      const reports: ReportDraft[] = [];
      const before = server.requests.length;
      const d = multi(1);
      d.artifacts[2]!.compatibility = { hardwareClasses: ['rk3588'] };
      await apply(reconciler(dir, reports), d);
      expect(reports).toEqual([expect.objectContaining({ state: 'incompatible' })]);
      expect(reports[0]!.failure?.message).toBe('no build fits: npu-int8 (needs npu); gpu-fp16 (needs cuda); cpu-fp32 (hardware class x86_64 not in [rk3588])');
      expect(server.requests.length).toBe(before);
    });
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

  it("re-states an ended update on connection even while the hello's answer has a run going for it", async () => {
    // Before the restart: 1.2.0 fails its health check and is rolled back, and the report of that
    // is lost with the process (journaled, never sent).
    const dir = await newDataDir();
    const before = reconciler(dir, []);
    await apply(before, desired('1.1.0', 1));
    await apply(before, desired('1.2.0', 2));
    await before.stop();

    // After it: a run for the re-delivered revision is held while the connection re-states states.
    let hold: (() => void) | undefined;
    let held: (() => void) | undefined;
    const runHeld = new Promise<void>((r) => (held = r));
    const gated = (inner: ModelStore): ModelStore =>
      Object.assign(Object.create(inner) as ModelStore, {
        pointers: async (model: string): Promise<ModelPointers> => {
          if (hold === undefined && held !== undefined) {
            const release = new Promise<void>((r) => (hold = r));
            held();
            await release;
          }
          return inner.pointers(model);
        },
      });
    const reports: ReportDraft[] = [];
    const after = reconciler(dir, reports, undefined, 3, { wrapModels: gated });
    const armed = held;
    held = undefined; // recovery's own run passes
    await after.recover();
    await after.settled();
    held = armed;
    await after.setDesired('resnet', desired('1.2.0', 2)); // the hello's answer: the same, ended revision
    await runHeld;
    await after.reportCurrentStates();
    hold!();
    await after.settled();
    expect(reports.map((x) => `${x.version} ${x.state}`)).toEqual(['1.2.0 rolled-back']);
    expect(reports[0]).toMatchObject({ activeVersion: '1.1.0', failure: { code: 'health-check-failed' } });
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

  it('starts after a long outage that left an update journaled in idle past its deadline', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    // Power cut right after the new update was journaled (idle), before its first step ran.
    const crashing = new CrashingStore(
      file,
      (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === 'idle' && (value as JournalEntry).desired.version === '1.1.0',
    );
    const first = reconciler(dir, [], crashing);
    await apply(first, desired('1.1.0', 2, { timeoutSeconds: 60 }));
    await first.stop();
    expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'idle', desired: { version: '1.1.0' } });

    // The device comes back two hours later: the update's deadline passed while it was off.
    const later = new Date(Date.now() + 2 * 3_600_000);
    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports, undefined, 3, { now: () => later });
    await second.recover();
    await second.settled();
    expect(reports.map((x) => x.state)).toEqual(['failed']);
    expect(reports[0]).toMatchObject({ version: '1.1.0', revision: 2, activeVersion: '1.0.0', failure: { code: 'download-timeout' } });
    expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'failed', desired: { revision: 2 } });
    expect(await active(dir)).toBe('1.0.0');
  });

  it('finishes the newer assignment after a crash between abandoning a superseded update and removing its entry', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    let downloading = false;
    // Crash on the abandon write: the second time 1.1.0 is journaled in idle, after its download began.
    const crashing = new CrashingStore(file, (key, value) => {
      if (key !== 'journal/resnet' || (value as JournalEntry).desired.version !== '1.1.0') return false;
      if ((value as JournalEntry).state === 'downloading') downloading = true;
      return downloading && (value as JournalEntry).state === 'idle';
    });
    // The 1.1.0 download never finishes on its own: only the superseding assignment ends it.
    const holdDownload = (inner: ArtifactDownloader): ArtifactDownloader => ({
      fetch: (d, ctx) =>
        d.version === '1.1.0'
          ? new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }))
          : inner.fetch(d, ctx),
      verify: (d) => inner.verify(d),
      discard: (d) => inner.discard(d),
    });
    const first = reconciler(dir, [], crashing, 3, { wrapDownloader: holdDownload });
    await first.setDesired('resnet', desired('1.1.0', 2));
    await waitUntil(async () => (await file.read<JournalEntry>('journal/resnet'))?.state === 'downloading');
    await first.setDesired('resnet', desired('1.3.0', 3));
    await first.settled();
    await first.stop();
    expect(crashing.dead).toBe(true);
    expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'idle', desired: { version: '1.1.0', revision: 2 } });

    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await second.settled();
    expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'committed', desired: { version: '1.3.0', revision: 3 } });
    expect(reports.at(-1)).toMatchObject({ state: 'committed', version: '1.3.0', revision: 3, activeVersion: '1.3.0', previousVersion: '1.0.0' });
    expect(await active(dir)).toBe('1.3.0');
  });

  it('abandons an update cut short while installing when a newer assignment is waiting after the restart', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    const crashing = new CrashingStore(
      file,
      (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === 'installing' && (value as JournalEntry).desired.version === '1.1.0',
    );
    const first = reconciler(dir, [], crashing);
    await apply(first, desired('1.1.0', 2));
    await first.stop();
    // While the device was off the control plane assigned 1.3.0; it arrives before anything else runs.
    await file.write('desired/resnet', desired('1.3.0', 3));

    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await second.settled();
    expect((await file.read<JournalEntry>('journal/resnet'))!).toMatchObject({ state: 'committed', desired: { version: '1.3.0', revision: 3 } });
    expect(await active(dir)).toBe('1.3.0');
    // The half-installed 1.1.0 is gone; 1.0.0 stays as the rollback target.
    expect((await readdir(join(dir, 'models', 'resnet', 'versions'))).sort()).toEqual(['1.0.0', '1.3.0']);
  });

  it('does not resume, offline, the update of a model that was unassigned right before a crash', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    const crashing = new CrashingStore(
      file,
      (key, value) => key === 'journal/resnet' && (value as JournalEntry).state === 'verifying' && (value as JournalEntry).desired.version === '1.1.0',
    );
    const first = reconciler(dir, [], crashing);
    await apply(first, desired('1.1.0', 2));
    await first.stop();
    // The unassignment reached the device (its desired state is gone) just before the power cut.
    await file.delete('desired/resnet');

    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await second.settled();
    expect(await file.read('journal/resnet')).toBeUndefined();
    expect(reports.filter((x) => x.state === 'installing' || x.state === 'committed')).toEqual([]);
    expect(await active(dir)).toBeNull();
  });

  it('reports the removal of an unassigned model, and states it again on every connection until a newer assignment', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const r = reconciler(dir, reports);
    await apply(r, desired('1.0.0', 1));
    await apply(r, desired('1.1.0', 2, { rolloutId: 'ro-9' }));
    reports.length = 0;
    await r.setDesired('resnet', null, 3);
    await r.settled();
    expect(await active(dir)).toBeNull();
    const removal = { model: 'resnet', version: '1.1.0', revision: 3, state: 'removed', activeVersion: null, previousVersion: null };
    expect(reports).toEqual([{ ...removal, at: expect.any(String) }]);
    // What goes on the wire is a valid report (the outbox adds v and seq).
    expect(decodePayload(updateReportSchema, encodePayload({ v: 1, seq: 1, ...reports[0]! })).ok).toBe(true);

    // Reconnection, and a restart: the removal is the model's latest report.
    reports.length = 0;
    await r.reportCurrentStates();
    expect(reports).toEqual([expect.objectContaining(removal)]);
    const restarted: ReportDraft[] = [];
    const again = reconciler(dir, restarted);
    await again.recover();
    await again.settled();
    await again.reportCurrentStates();
    expect(restarted).toEqual([expect.objectContaining(removal)]);

    // A newer assignment ends it: from then on its own reports tell what runs.
    await apply(again, desired('1.0.0', 4));
    restarted.length = 0;
    await again.reportCurrentStates();
    expect(restarted.map((x) => [x.state, x.revision])).toEqual([['committed', 4]]);
  });

  it('after a reconnection re-states only what the stored report lacks, and what the answer left out after the fallback', async () => {
    const dir = await newDataDir();
    const reports: ReportDraft[] = [];
    const r = reconciler(dir, reports, undefined, 3, { resyncFallbackMs: 60_000 });
    await apply(r, desired('1.0.0', 1));
    await apply(r, desired('1.1.0', 2));
    const stored = { version: '1.1.0', revision: 2, state: 'committed' as const, activeVersion: '1.1.0', previousVersion: '1.0.0' };
    expect(reports.at(-1)).toMatchObject(stored);

    // The answer carries exactly what the device would say: nothing is sent.
    reports.length = 0;
    await r.beginResync();
    await r.resyncModel('resnet', stored);
    expect(reports).toEqual([]);
    expect(r.skippedRestates).toBe(1);
    // Only the first mention after a connection counts: a later desired message re-states nothing.
    await r.resyncModel('resnet', undefined);
    expect(reports).toEqual([]);

    // A stored report that differs in any field (here: the server missed the commit), or none at all
    // (an older control plane): the model is re-stated.
    for (const answer of [{ ...stored, state: 'activating' as const }, undefined]) {
      reports.length = 0;
      await r.beginResync();
      await r.resyncModel('resnet', answer);
      expect(reports).toEqual([expect.objectContaining(stored)]);
    }
    expect(r.skippedRestates).toBe(1);

    // A model the answer does not mention is re-stated once the fallback delay has passed ...
    const quick = reconciler(dir, reports, undefined, 3, { resyncFallbackMs: 50 });
    await quick.recover();
    await quick.settled();
    reports.length = 0;
    await quick.beginResync();
    expect(reports).toEqual([]);
    const deadline = Date.now() + 5_000;
    while (reports.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(reports).toEqual([expect.objectContaining(stored)]);
    // ... and not when the connection ended first: the next connection decides.
    reports.length = 0;
    await quick.beginResync();
    quick.endResync();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(reports).toEqual([]);
  });

  it('finishes and reports a removal a crash interrupted before any file was removed', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const file = new FileStateStore(join(dir, 'state'));
    const first = reconciler(dir, [], new CrashingStore(file, (key) => key === 'removed/resnet'));
    await first.setDesired('resnet', null, 2);
    await first.settled();
    await first.stop();
    expect(await active(dir)).toBe('1.0.0'); // the power went before the files did

    const reports: ReportDraft[] = [];
    const second = reconciler(dir, reports);
    await second.recover();
    await second.settled();
    expect(await active(dir)).toBeNull();
    expect(reports).toEqual([expect.objectContaining({ state: 'removed', version: '1.0.0', revision: 2, activeVersion: null, previousVersion: null })]);
  });

  it('loop breaker: an error no step can handle ends the update through the table instead of leaving it mid-way', async () => {
    const dir = await newDataDir();
    await apply(reconciler(dir, []), desired('1.0.0', 1));
    const reports: ReportDraft[] = [];
    let refused = false;
    // The outbox refuses one report (e.g. a full disk): the error escapes the step.
    const r = reconciler(dir, reports, undefined, 3, {
      report: async (d) => {
        if (d.state === 'verifying' && !refused) {
          refused = true;
          throw new Error('outbox write failed: ENOSPC');
        }
        reports.push(d);
      },
    });
    await apply(r, desired('1.1.0', 2));
    const entry = (await new FileStateStore(join(dir, 'state')).read<JournalEntry>('journal/resnet'))!;
    expect(entry).toMatchObject({ state: 'failed', desired: { revision: 2 }, failure: { code: 'internal' } });
    expect(entry.failure!.message).toContain('ENOSPC');
    expect(reports.map((x) => x.state)).toEqual(['downloading', 'failed']);
    expect(await active(dir)).toBe('1.0.0');
  });

  it('property: for any journal entry a crash can leave, recovery does not throw and the model ends its update', async () => {
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          state: fc.constantFrom(...UPDATE_STATES),
          deadlinePassed: fc.boolean(),
          assignment: fc.constantFrom('same', 'superseded', 'unassigned'),
          action: fc.constantFrom<DesiredModel['action']>('install', 'download-only'),
          installRequested: fc.boolean(),
          restarts: fc.integer({ min: 0, max: 3 }),
        }),
        async (c) => {
          const dir = await newDataDir();
          await apply(reconciler(dir, []), desired('1.0.0', 1));
          const file = new FileStateStore(join(dir, 'state'));
          const started = new Date(Date.now() - 3_600_000);
          const entry: JournalEntry = {
            model: 'resnet',
            desired: desired('1.1.0', 2, { action: c.action }),
            state: c.state,
            previousVersion: '1.0.0',
            priorPrevious: null,
            restarts: c.restarts,
            ...(c.installRequested ? { installRequested: true } : {}),
            startedAt: started.toISOString(),
            updatedAt: started.toISOString(),
            deadline: new Date(Date.now() + (c.deadlinePassed ? -60_000 : 3_600_000)).toISOString(),
          };
          await file.write('journal/resnet', entry);
          const current = c.assignment === 'superseded' ? desired('1.3.0', 3) : entry.desired;
          if (c.assignment !== 'unassigned') await file.write('desired/resnet', current);
          else await file.delete('desired/resnet');

          const r = reconciler(dir, []);
          await r.recover(); // must not throw
          await r.settled();

          const after = await file.read<JournalEntry>('journal/resnet');
          if (c.assignment === 'unassigned') {
            // Unassigned before the crash: whatever was in flight ended or was abandoned, then the model was removed.
            expect(after).toBeUndefined();
            expect(await active(dir)).toBeNull();
          } else {
            expect(after).toBeDefined();
            expect(['committed', 'rolled-back', 'failed', 'incompatible', 'downloaded']).toContain(after!.state);
            expect(after!.desired.revision).toBe(current.revision);
          }
          // Whatever `current` points at is a complete, verified version.
          const bytes = await readFile(join(dir, 'models', 'resnet', 'current', 'model.onnx')).catch(() => undefined);
          if (bytes) expect(Object.values(targets).map((t) => t.sha256)).toContain(sha(bytes));
        },
      ),
      { numRuns: Number(process.env['PROPERTY_RUNS'] ?? 30) },
    );
  }, 180_000);

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
