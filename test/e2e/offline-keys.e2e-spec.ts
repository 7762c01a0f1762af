import { spawn } from 'node:child_process';
import { sign } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, Signature, Targets, Timestamp, MetaFile } from '@tufjs/models';
import { type FleetlineUnderTest, sha256, startFleetline, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, writeHealthScript } from '../support/agent-process.js';
import { AgentProxy } from '../support/agent-proxy.js';
import { type ControlPlaneProcess, fleetctlMain, startControlPlane } from '../support/control-plane.process.js';
import { signingKeyFromPem } from '../../apps/fleetctl/src/tuf/offline-signing.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

type SignedTargets = { signed: { version: number; targets: Record<string, { hashes: { sha256: string } }> }; signatures: unknown[] };

/**
 * TUF_KEYS=offline with real processes: the built control plane, `fleetctl` as the operator's
 * machine (the only place the root and targets keys exist) and a real `fleet-agent` that enrolled
 * before a key rotation and keeps installing after it.
 */
describe('offline TUF keys: control plane + fleetctl + agent', () => {
  let fleet: FleetlineUnderTest;
  let agent: AgentProcess;
  /** The agent's HTTP path to the control plane (enrollment, TUF metadata, targets). */
  let proxy: AgentProxy;
  /** The server's timestamp key before the rotation, kept as a thief would. */
  let stolenTimestampPem: string;
  /** The control plane restarted by the last test (stopped before the fleet's database is dropped). */
  let restarted: ControlPlaneProcess | undefined;
  let work: string;
  let keyDir: string;
  const MODEL = 'detector';
  const FILE = 'weights.bin';
  const v1 = commandArtifact({ size: 120_000, seed: 'offline-v1' });
  const v2 = commandArtifact({ size: 130_000, seed: 'offline-v2' });

  const fleetctl = (args: string[]): Promise<CliResult> =>
    new Promise((resolve, reject) => {
      const env = {
        PATH: process.env['PATH'] ?? '',
        HOME: work,
        FLEETCTL_CONFIG: join(work, 'fleetctl.json'),
        FLEET_SERVER: fleet.cp.baseUrl,
        FLEET_API_KEY: fleet.cp.adminKey,
      };
      const child = spawn(process.execPath, [fleetctlMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  const ok = async (args: string[]): Promise<string> => {
    const result = await fleetctl(args);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    return result.stdout;
  };

  /** What the server asks the operator to sign, signed with `pemFile` (the test plays a careless or malicious signer). */
  async function pendingSignedWith(pemFile: string, edit?: (t: SignedTargets['signed']) => void): Promise<SignedTargets> {
    const pending = await fleet.api.request<{ pending: SignedTargets }>('GET', '/api/v1/tuf/admin/targets/pending', undefined, 200);
    const signed = structuredClone(pending.body.pending.signed);
    edit?.(signed);
    const key = signingKeyFromPem(await readFile(pemFile, 'utf8'));
    const metadata = new Metadata(Targets.fromJSON(signed as unknown as Parameters<typeof Targets.fromJSON>[0]));
    metadata.sign((data) => new Signature({ keyID: key.key.keyID, sig: sign(null, data, key.privateKey).toString('hex') }));
    return metadata.toJSON() as unknown as SignedTargets;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetline-offline-keys-'));
    keyDir = join(work, 'fleet-keys');
    fleet = await startFleetline({ TUF_KEYS: 'offline' });
    proxy = await AgentProxy.start(fleet.cp.baseUrl);
    const healthScript = await writeHealthScript(work);
    agent = await AgentProcess.create({ config: { runtimes: { command: { command: healthScript, timeoutSeconds: 30 } }, healthCheckTimeoutSeconds: 30 } });
  }, 120_000);

  afterAll(async () => {
    if (agent) {
      if (agent.running) await agent.stop();
      await agent.remove();
    }
    await proxy?.close();
    await restarted?.stop();
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keys init makes root and targets keys on the operator side only and publishes root v1', async () => {
    expect(fleet.cp.output()).toContain('devices cannot enroll until the operator runs `fleetctl keys init`');
    const out = await ok(['keys', 'init', '--key-dir', keyDir]);
    expect(out).toContain('published root v1');
    expect((await readdir(keyDir)).sort()).toEqual(['root.json', 'root.key.pem', 'targets.key.pem']);
    expect((await readdir(join(fleet.cp.dataDir, 'tuf-keys'))).sort()).toEqual(['snapshot.key.pem', 'timestamp.key.pem']);
    const status = await fleet.api.request<Record<string, { online: boolean }>>('GET', '/api/v1/tuf/admin/status', undefined, 200);
    expect(status.body).toMatchObject({ root: { online: false }, targets: { online: false }, snapshot: { online: true }, timestamp: { online: true } });

    const token = await fleet.api.createEnrollmentToken('offline-e2e');
    const enrolled = await agent.enroll(proxy.url, token, { id: 'offline-cam-1' });
    expect(enrolled.code).toBe(0);
    await agent.start();
    await waitFor('offline-cam-1 online', async () => ((await fleet.api.device('offline-cam-1')).online ? true : undefined));
  });

  it('an upload waits for a signature: no rollout (409), tampered or unsigned targets are refused (400)', async () => {
    await ok(['models', 'create', MODEL]);
    const file = join(work, FILE);
    await writeFile(file, v1);
    const uploaded = JSON.parse(
      await ok(['--json', 'models', 'upload', MODEL, '--version', '1.0.0', '--file', file, '--metadata', '{"runtime":"command"}']),
    ) as {
      status: string;
    };
    expect(uploaded.status).toBe('awaiting-signature');
    const ids = join(work, 'devices.txt');
    await writeFile(ids, `${agent.deviceId}\n`);
    const rollout = await fleetctl(['rollouts', 'create', '--model', MODEL, '--version', '1.0.0', '--device-ids-file', ids, '--waves', '100', '--bake', '60']);
    expect(rollout.code).toBe(2);
    expect(rollout.stderr).toContain('version-awaiting-signature');
    expect(rollout.stderr).toContain('HTTP 409');

    const pending = JSON.parse(await ok(['--json', 'targets', 'pending', '--key-dir', keyDir])) as {
      added: { path: string; sha256: string; length: number }[];
    };
    expect(pending.added).toEqual([expect.objectContaining({ path: `${MODEL}/1.0.0/${FILE}`, sha256: sha256(v1), length: v1.length })]);

    const unsigned = await fleet.api.request<{ pending: SignedTargets }>('GET', '/api/v1/tuf/admin/targets/pending', undefined, 200);
    expect(unsigned.body.pending.signatures).toEqual([]);
    expect((await fleet.api.request('PUT', '/api/v1/tuf/admin/targets', unsigned.body.pending)).status).toBe(400);
    const tampered = await pendingSignedWith(join(keyDir, 'targets.key.pem'));
    tampered.signed.targets[`${MODEL}/1.0.0/${FILE}`]!.hashes.sha256 = sha256(Buffer.from('something else'));
    const refused = await fleet.api.request<{ code: string }>('PUT', '/api/v1/tuf/admin/targets', tampered);
    expect(refused).toMatchObject({ status: 400, body: { code: 'invalid-metadata' } });

    // fleetctl refuses to sign more than the operator expects.
    const wrong = await fleetctl(['targets', 'sign', '--key-dir', keyDir, '--expect', `${MODEL}@9.9.9`]);
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toContain('nothing was signed');
    expect((await fleet.api.request<{ status: string }>('GET', `/api/v1/models/${MODEL}/versions/1.0.0`, undefined, 200)).body.status).toBe(
      'awaiting-signature',
    );
  });

  it('after fleetctl targets sign the agent installs the version', async () => {
    const out = await ok(['targets', 'sign', '--key-dir', keyDir, '--expect', `${MODEL}@1.0.0`]);
    expect(out).toContain('signed and published targets v2');
    expect((await fleet.api.request<{ status: string }>('GET', `/api/v1/models/${MODEL}/versions/1.0.0`, undefined, 200)).body.status).toBe('published');
    await fleet.api.assign(agent.deviceId, MODEL, '1.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '1.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '1.0.0', failure: null });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v1));
  });

  it('rotates the targets and timestamp keys: the agent enrolled on root v1 installs the next version, the revoked key is refused', async () => {
    stolenTimestampPem = await readFile(join(fleet.cp.dataDir, 'tuf-keys', 'timestamp.key.pem'), 'utf8');
    const out = await ok(['keys', 'rotate', '--key-dir', keyDir, '--role', 'targets', '--role', 'timestamp']);
    expect(out).toContain('published root v2');
    const retired = await readdir(join(keyDir, 'retired'));
    expect(retired).toHaveLength(1);

    await mkdir(join(work, 'v2'));
    const file = join(work, 'v2', FILE);
    await writeFile(file, v2);
    await ok(['models', 'upload', MODEL, '--version', '2.0.0', '--file', file, '--metadata', '{"runtime":"command"}']);
    const revoked = await fleet.api.request<{ code: string; message: string }>(
      'PUT',
      '/api/v1/tuf/admin/targets',
      await pendingSignedWith(join(keyDir, 'retired', retired[0]!)),
    );
    expect(revoked.status).toBe(400);
    expect(revoked.body.message).toContain('not signed by a threshold');

    await ok(['targets', 'sign', '--key-dir', keyDir, '--expect', `${MODEL}@2.0.0`]);
    await fleet.api.assign(agent.deviceId, MODEL, '2.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '2.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '2.0.0', previousVersion: '1.0.0', failure: null });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v2));
  });

  it('the agent refuses a timestamp signed with the revoked timestamp key, and installs once the real one is served', async () => {
    const v3 = commandArtifact({ size: 90_000, seed: 'offline-v3' });
    await mkdir(join(work, 'v3'));
    const file = join(work, 'v3', FILE);
    await writeFile(file, v3);
    await ok(['models', 'upload', MODEL, '--version', '3.0.0', '--file', file, '--metadata', '{"runtime":"command"}']);
    await ok(['targets', 'sign', '--key-dir', keyDir, '--expect', `${MODEL}@3.0.0`]);

    // Someone with the old timestamp key answers the agent's timestamp requests.
    const key = signingKeyFromPem(stolenTimestampPem);
    const forged = new Metadata(
      new Timestamp({
        version: 1_000_000,
        specVersion: '1.0.31',
        expires: new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        snapshotMeta: new MetaFile({ version: 1 }),
      }),
    );
    forged.sign((data) => new Signature({ keyID: key.key.keyID, sig: sign(null, data, key.privateKey).toString('hex') }));
    const forgedText = JSON.stringify(forged.toJSON());
    proxy.replace = (url) => (url.startsWith('/api/v1/tuf/metadata/timestamp.json') ? forgedText : undefined);

    await fleet.api.assign(agent.deviceId, MODEL, '3.0.0');
    const refused = await fleet.api.waitForReport(agent.deviceId, MODEL, '3.0.0', 'failed');
    expect(refused.failure?.code).toBe('verification-failed');
    expect(refused.failure?.message).toMatch(/timestamp/i);
    expect(refused.activeVersion).toBe('2.0.0');
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v2));

    proxy.replace = undefined;
    await fleet.api.assign(agent.deviceId, MODEL, '3.0.0');
    const state = await fleet.api.waitForReport(agent.deviceId, MODEL, '3.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '3.0.0', failure: null });
    expect(sha256(await agent.activeFile(MODEL, FILE))).toBe(sha256(v3));
  });

  it('restarts in offline mode with the rotated keys, and refuses to start with a root key on the server', async () => {
    const cp = fleet.cp;
    await cp.stop();
    const same = { dataDir: cp.dataDir, httpPort: cp.httpPort, mqttPort: cp.mqttPort, adminKey: cp.adminKey, env: { TUF_KEYS: 'offline' } };
    const rootKeyOnServer = join(cp.dataDir, 'tuf-keys', 'root.key.pem');
    await copyFile(join(keyDir, 'root.key.pem'), rootKeyOnServer);
    await expect(startControlPlane({ ...same, ...(cp.databaseUrl ? { databaseUrl: cp.databaseUrl } : {}) })).rejects.toThrow(
      /TUF_KEYS=offline but .*root\.key\.pem exist/,
    );
    await rm(rootKeyOnServer);

    restarted = await startControlPlane({ ...same, ...(cp.databaseUrl ? { databaseUrl: cp.databaseUrl } : {}) });
    const status = (await (
      await fetch(`${restarted.baseUrl}/api/v1/tuf/admin/status`, { headers: { authorization: `Bearer ${cp.adminKey}` } })
    ).json()) as Record<string, { version: number; online: boolean; keyIds: string[] }>;
    expect(status).toMatchObject({ root: { version: 2, online: false }, targets: { online: false }, snapshot: { online: true }, timestamp: { online: true } });
    const trusted = JSON.parse(await readFile(join(keyDir, 'root.json'), 'utf8')) as { signed: { roles: { timestamp: { keyids: string[] } } } };
    expect(status['timestamp']?.keyIds).toEqual(trusted.signed.roles.timestamp.keyids);
  });
});
