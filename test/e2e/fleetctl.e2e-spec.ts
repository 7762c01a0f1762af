import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt, { type MqttClient } from 'mqtt';
import { type DesiredModel, PROTOCOL_VERSION, topics, type UpdateReport } from '@fleetline/protocol';
import { type ApiClient, apiClient, eventually, startTestApp, type TestApp } from '../../apps/control-plane/src/testing/test-app.fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'apps/fleetctl/dist/main.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A device as the control plane sees one: an MQTT client with the device's own credentials that
 * follows its desired state like an agent would (downloading, then committed), or fails the
 * versions it is told to fail.
 */
class ScriptedDevice {
  private seq = 0;
  readonly applied: string[] = [];

  private constructor(
    readonly id: string,
    private readonly client: MqttClient,
    private readonly failVersions: Set<string>,
  ) {}

  static async connect(mqttUrl: string, id: string, secret: string, failVersions: string[] = []): Promise<ScriptedDevice> {
    const client = await mqtt.connectAsync(mqttUrl, { clientId: id, username: id, password: secret, protocolVersion: 4, reconnectPeriod: 0, clean: true });
    const device = new ScriptedDevice(id, client, new Set(failVersions));
    client.on('message', (_topic, payload) => {
      const message = payload.length === 0 ? undefined : (JSON.parse(payload.toString()) as DesiredModel | { cleared: true });
      if (!message || 'cleared' in message) return;
      void device.follow(message).catch(() => undefined); // the test asserts through the API, not here
    });
    await client.subscribeAsync(topics.desiredAll(id), { qos: 1 });
    await client.publishAsync(topics.presence(id), JSON.stringify({ v: PROTOCOL_VERSION, online: true, at: new Date().toISOString() }), {
      qos: 1,
    });
    return device;
  }

  private active: string | null = null;

  private async follow(desired: DesiredModel): Promise<void> {
    const report = (state: UpdateReport['state'], extra: Partial<UpdateReport> = {}): UpdateReport => ({
      v: PROTOCOL_VERSION,
      seq: ++this.seq,
      model: desired.model,
      version: desired.version,
      revision: desired.revision,
      state,
      activeVersion: this.active,
      previousVersion: null,
      ...(desired.rolloutId ? { rolloutId: desired.rolloutId } : {}),
      at: new Date().toISOString(),
      ...extra,
    });
    if (desired.version === this.active) {
      // Already running it (e.g. the revert of an aborted rollout): an agent confirms at once.
      await this.client.publishAsync(topics.reported(this.id), JSON.stringify(report('committed')), { qos: 1 });
      return;
    }
    await this.client.publishAsync(topics.reported(this.id), JSON.stringify(report('downloading')), { qos: 1 });
    if (this.failVersions.has(desired.version)) {
      await this.client.publishAsync(
        topics.reported(this.id),
        JSON.stringify(report('failed', { failure: { code: 'install-failed', message: 'scripted failure' } })),
        { qos: 1 },
      );
      return;
    }
    const previous = this.active;
    this.active = desired.version;
    this.applied.push(desired.version);
    await this.client.publishAsync(
      topics.reported(this.id),
      JSON.stringify(report('committed', { activeVersion: desired.version, previousVersion: previous })),
      { qos: 1 },
    );
  }

  close(): Promise<void> {
    return this.client.endAsync();
  }
}

/**
 * fleetctl end to end: the real control plane (embedded broker and database) in this process,
 * the CLI as a real child process from apps/fleetctl/dist, devices as real MQTT clients.
 */
describe('fleetctl', () => {
  let t: TestApp;
  let admin: ApiClient;
  let dir: string;
  let configFile: string;
  let artifact: string;
  const devices: ScriptedDevice[] = [];

  const cli = (args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> =>
    new Promise((resolvePromise, reject) => {
      const childEnv: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: dir, FLEETCTL_CONFIG: configFile, ...env };
      const child = spawn(process.execPath, [CLI, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code, stdout, stderr });
      });
    });

  const json = <T>(result: CliResult): T => {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout) as T;
  };

  beforeAll(async () => {
    // The CLI runs from its build output: bring it up to date (incremental, fast when it is).
    await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', join(ROOT, 'apps/fleetctl/tsconfig.json')], {
      cwd: ROOT,
    });
    dir = await mkdtemp(join(tmpdir(), 'fleetctl-e2e-'));
    configFile = join(dir, 'config', 'fleetctl.json');
    artifact = join(dir, 'weights.bin');
    await writeFile(artifact, randomBytes(256 * 1024));
    t = await startTestApp('pglite');
    admin = apiClient(t.baseUrl, t.adminKey);
    for (const [id, region] of [
      ['cam-1', 'eu'],
      ['cam-2', 'eu'],
      ['cam-3', 'eu'],
      ['cam-4', 'us'],
    ] as const) {
      const created = await admin.post<{ secret: string }>('/api/v1/devices', { id, tags: { region } });
      expect(created.status).toBe(201);
      devices.push(await ScriptedDevice.connect(t.mqttUrl, id, created.body.secret, ['3.0.0']));
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('explains itself and refuses bad usage with exit code 1', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const word of ['login', 'models', 'devices', 'rollouts', 'Exit codes']) expect(help.stdout).toContain(word);
    const noServer = await cli(['models', 'list']);
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toContain('no server');
    const unknown = await cli(['rollouts', 'explode']);
    expect(unknown.code).toBe(1);
    const missing = await cli(['rollouts', 'create', '--server', t.baseUrl, '--key', t.adminKey, '--model', 'detector']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--version is required');
  });

  it('reports an unreachable server with exit code 3 and a refused key with exit code 2', async () => {
    const down = await cli(['models', 'list', '--server', 'http://127.0.0.1:9', '--key', 'k'.repeat(30)]);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('cannot reach');
    const badKey = await cli(['models', 'list'], { FLEET_SERVER: t.baseUrl, FLEET_API_KEY: 'flk_wrong_wrong_wrong_wrong_wrong' });
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain('unauthenticated');
  });

  it('logs in and saves the connection with mode 0600', async () => {
    const login = await cli(['login', '--server', t.baseUrl, '--key', t.adminKey]);
    expect(login.code).toBe(0);
    expect(login.stdout).toContain('logged in');
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
  });

  it('creates a model and streams version uploads', async () => {
    expect(json<{ name: string }>(await cli(['models', 'create', 'detector', '--description', 'finds defects', '--json']))).toMatchObject({ name: 'detector' });
    const duplicate = await cli(['models', 'create', 'detector']);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toMatch(/error: [a-z-]+: .*\(HTTP 409\)/);

    for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
      const uploaded = json<{ version: string; artifacts: { sha256: string }[] }>(
        await cli(['models', 'upload', 'detector', '--version', version, '--file', artifact, '--metadata', '{"runtime":"simulated"}', '--json']),
      );
      expect(uploaded).toMatchObject({ version, artifacts: [expect.objectContaining({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/) })] });
    }
    const again = await cli(['models', 'upload', 'detector', '--version', '1.0.0', '--file', artifact]);
    expect(again.code).toBe(2);
    const noFile = await cli(['models', 'upload', 'detector', '--version', '4.0.0', '--file', join(dir, 'missing.bin')]);
    expect(noFile.code).toBe(1);

    const list = json<{ name: string; latestVersion: string; versionCount: number }[]>(await cli(['models', 'list', '--json']));
    expect(list).toEqual([expect.objectContaining({ name: 'detector', latestVersion: '3.0.0', versionCount: 3 })]);
    const table = await cli(['models', 'list']);
    expect(table.stdout).toMatch(/detector\s+3\.0\.0\s+3\s+finds defects/);
  });

  it('lists devices with filters and follows keyset pages', async () => {
    await eventually(
      async () => ((await admin.get<{ items: unknown[] }>('/api/v1/devices?online=true')).body.items.length === 4 ? true : undefined),
      10_000,
      'devices online',
    );
    const eu = json<{ items: { id: string }[]; next: string | null }>(await cli(['devices', 'list', '--tag', 'region=eu', '--online', '--json']));
    expect(eu.items.map((d) => d.id)).toEqual(['cam-1', 'cam-2', 'cam-3']);
    const all = json<{ id: string }[]>(await cli(['devices', 'list', '--limit', '1', '--all', '--json']));
    expect(all.map((d) => d.id)).toEqual(['cam-1', 'cam-2', 'cam-3', 'cam-4']);
    const onePage = await cli(['devices', 'list', '--limit', '2']);
    expect(onePage.code).toBe(0);
    expect(onePage.stdout).toMatch(/^ID\s+ONLINE/);
    expect(onePage.stdout).toContain('cam-2');
    expect(onePage.stdout).not.toContain('cam-3');
    expect(onePage.stderr).toContain('more devices');
    const shown = await cli(['devices', 'show', 'cam-4']);
    expect(shown.stdout).toMatch(/id:\s+cam-4/);
    const missing = await cli(['devices', 'show', 'cam-99']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('HTTP 404');
  });

  it('creates a rollout from flags and watches it to completion (exit 0)', async () => {
    const created = json<{ id: string; state: string; targetCount: number }>(
      await cli([
        'rollouts',
        'create',
        '--model',
        'detector',
        '--version',
        '1.0.0',
        '--tag',
        'region=eu',
        '--waves',
        '34,100',
        '--bake',
        '0',
        '--success',
        '100',
        '--json',
      ]),
    );
    expect(created.targetCount).toBe(3);
    const watched = await cli(['rollouts', 'watch', created.id], {}, 90_000);
    expect(watched.stderr).toBe('');
    expect(watched.code).toBe(0);
    expect(watched.stdout).toContain(`rollout ${created.id} completed`);
    // Plain lines (no terminal): progress, one line per change.
    expect(watched.stdout).not.toContain('\x1b[');
    expect(devices.filter((d) => d.applied.includes('1.0.0')).map((d) => d.id)).toEqual(['cam-1', 'cam-2', 'cam-3']);

    const listed = json<{ id: string; state: string }[]>(await cli(['rollouts', 'list', '--json']));
    expect(listed).toEqual([expect.objectContaining({ id: created.id, state: 'completed' })]);
    const shown = await cli(['rollouts', 'show', created.id]);
    expect(shown.stdout).toContain('completed');
    expect(shown.stdout).toMatch(/wave 2\/2 \(100%\)/);
  }, 120_000);

  it('watch exits 4 when the failure policy stops a rollout', async () => {
    const file = join(dir, 'failing.yaml');
    await writeFile(
      file,
      [
        'model: detector',
        'version: 3.0.0',
        'target:',
        '  tags: { region: eu }',
        'waves:',
        '  - percent: 100',
        '    failure: { percent: 50, minExecuted: 2 }',
        'onFailure: pause',
        '',
      ].join('\n'),
    );
    const created = json<{ id: string }>(await cli(['rollouts', 'create', '--file', file, '--json']));
    const watched = await cli(['rollouts', 'watch', created.id, '--json'], {}, 90_000);
    expect(watched.code).toBe(4);
    expect(watched.stderr).toContain('paused');
    // --json: one rollout snapshot per line.
    const snapshots = watched.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { state: string });
    expect(snapshots.at(-1)?.state).toBe('paused');

    const aborted = await cli(['rollouts', 'abort', created.id]);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toContain('abort accepted');
    const after = await cli(['rollouts', 'watch', created.id, '--no-stream', '--interval', '0.2'], {}, 60_000);
    expect(after.code).toBe(4);
    expect(after.stderr).toContain('aborted');
  }, 120_000);

  it('steers a rollout: pause, resume, abort, advance; wrong ids are API errors', async () => {
    // Two waves, the first (34 % of three devices) waits for approval once it is done.
    const file = join(dir, 'approval.json');
    await writeFile(
      file,
      JSON.stringify({
        model: 'detector',
        version: '2.0.0',
        target: { tags: { region: 'eu' } },
        waves: [{ percent: 34, manualApproval: true }, { percent: 100 }],
      }),
    );
    const firstWaveDone = (id: string) =>
      eventually(
        async () => {
          const first = (await admin.get<{ waves: { size: number; counts: Record<string, number> }[] }>(`/api/v1/rollouts/${id}`)).body.waves[0];
          return first && first.size > 0 && first.counts['committed'] === first.size ? true : undefined;
        },
        20_000,
        'first wave committed',
      );

    const held = json<{ id: string }>(await cli(['rollouts', 'create', '--file', file, '--json']));
    expect(json<{ state: string }>(await cli(['rollouts', 'pause', held.id, '--json'])).state).toBe('paused');
    const again = await cli(['rollouts', 'pause', held.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('HTTP 409');
    expect(json<{ state: string }>(await cli(['rollouts', 'resume', held.id, '--json'])).state).toBe('running');
    await firstWaveDone(held.id);
    const aborted = await cli(['rollouts', 'abort', held.id]);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toContain('abort accepted');
    const watchedAbort = await cli(['rollouts', 'watch', held.id]);
    expect(watchedAbort.code).toBe(4);
    expect(watchedAbort.stderr).toContain('aborted');
    // The abort reverts the first wave; once that is done the devices are free for the next rollout.
    await eventually(
      async () => ((await admin.get<{ finishedAt: string | null }>(`/api/v1/rollouts/${held.id}`)).body.finishedAt ? true : undefined),
      20_000,
      'rollback finished',
    );

    const approved = json<{ id: string }>(await cli(['rollouts', 'create', '--file', file, '--json']));
    await firstWaveDone(approved.id);
    expect(json<{ currentWave: number }>(await cli(['rollouts', 'advance', approved.id, '--json'])).currentWave).toBe(1);
    const watched = await cli(['rollouts', 'watch', approved.id]);
    expect(watched.code).toBe(0);
    expect(watched.stdout).toContain('completed');

    const notFound = await cli(['rollouts', 'show', '00000000-0000-4000-8000-000000000000']);
    expect(notFound.code).toBe(2);
    expect(notFound.stderr).toContain('HTTP 404');
    const badId = await cli(['rollouts', 'show', 'not-a-uuid']);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('HTTP 400');
  }, 60_000);

  it('creates, lists and revokes enrollment tokens: one use and 7 days by default', async () => {
    interface Token {
      id: string;
      token: string;
      maxUses: number | null;
      expiresAt: string;
      tags: Record<string, string>;
      deviceTagKeys: string[];
    }
    const one = json<Token>(await cli(['tokens', 'create', 'cli-one', '--json']));
    expect(one.token).toMatch(/^fle_/);
    expect(one.maxUses).toBe(1);
    expect(new Date(one.expiresAt).getTime() - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    const batch = json<Token>(
      await cli(['tokens', 'create', 'cli-batch', '--unlimited', '--expires-in', '12h', '--tag', 'site=hh', '--device-tag', 'camera', '--json']),
    );
    expect(batch).toMatchObject({ maxUses: null, tags: { site: 'hh' }, deviceTagKeys: ['camera'] });
    expect(new Date(batch.expiresAt).getTime() - Date.now()).toBeLessThan(12 * 3_600_000 + 60_000);
    const both = await cli(['tokens', 'create', 'x', '--unlimited', '--max-uses', '3']);
    expect(both.code).toBe(1);
    const list = json<{ items: { id: string; token?: string }[] }>(await cli(['tokens', 'list', '--json']));
    expect(list.items.map((i) => i.id)).toEqual(expect.arrayContaining([one.id, batch.id]));
    expect(JSON.stringify(list)).not.toContain(one.token);
    const revoked = await cli(['tokens', 'revoke', one.id]);
    expect([revoked.code, revoked.stdout.trim()]).toEqual([0, `revoked ${one.id}`]);
    expect((await admin.post<{ code: string }>('/api/v1/enroll', { token: one.token })).body.code).toBe('enrollment-token-revoked');
  });
});
