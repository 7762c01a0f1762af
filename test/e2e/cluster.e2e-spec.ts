import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { FleetApi, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, writeHealthScript } from '../support/agent-process.js';
import { type ControlPlaneProcess, freePort, type ScratchDatabase, scratchDatabase, startControlPlane } from '../support/control-plane.process.js';
import { seedSimulatedModel, SimGroup } from '../support/sim-fleet.js';
import { createRollout, rolloutDevices, waitForRollout } from '../support/sim-rollouts.js';

/**
 * Several control-plane replicas, each with its own embedded broker, sharing one PostgreSQL, one
 * Redis and one artifact volume (the clustered layout of docs/deployment.md), with real agent
 * processes. Devices spread over the replicas' brokers by their id; killing the replica that
 * drives rollouts loses no device and no report; a device assigned a version while it was offline
 * gets it after every replica has restarted. Clustering needs PostgreSQL: CI always sets DATABASE_URL.
 */
const REPLICAS = 3;
const DEVICES = 30;
const redisUrl = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
if (process.env['CI'] && !process.env['DATABASE_URL']) throw new Error('the cluster end-to-end test needs DATABASE_URL in CI');
const run = process.env['DATABASE_URL'] ? describe : describe.skip;

run('clustered control planes with real agents', () => {
  let db: ScratchDatabase;
  let dataDir: string;
  let work: string;
  const adminKey = `flk_e2e_${randomBytes(24).toString('base64url')}`;
  const ports: { http: number; mqtt: number }[] = [];
  const replicas: (ControlPlaneProcess | undefined)[] = [];
  let api: FleetApi;
  let sim: SimGroup;
  let agent: AgentProcess;
  let sql: pg.Client;

  const replicaId = (i: number): string => `e2e-r${i + 1}`;
  const start = async (i: number): Promise<ControlPlaneProcess> => {
    const cp = await startControlPlane({
      dataDir,
      databaseUrl: db!.url,
      adminKey,
      httpPort: ports[i]!.http,
      mqttPort: ports[i]!.mqtt,
      env: {
        REDIS_URL: redisUrl,
        REPLICA_ID: replicaId(i),
        MQTT_PUBLIC_URL: ports.map((p) => `mqtt://127.0.0.1:${p.mqtt}`).join(','),
        // Devices download through the last replica, as they would through a load balancer.
        PUBLIC_URL: `http://127.0.0.1:${ports[REPLICAS - 1]!.http}`,
      },
    });
    replicas[i] = cp;
    return cp;
  };

  /** Which replica holds the rollout driver's advisory lock (pg_stat_activity names each replica). */
  const leaseHolder = async (): Promise<number | undefined> => {
    const { rows } = await sql.query<{ application_name: string }>(
      `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objid = 7214002 AND a.datname = current_database()`,
    );
    const name = rows[0]?.application_name;
    const i = name ? Array.from({ length: REPLICAS }, (_, k) => `fleetline-driver:${replicaId(k)}`).indexOf(name) : -1;
    return i >= 0 ? i : undefined;
  };

  const connectionsPerReplica = async (): Promise<Map<string, number>> => {
    const { rows } = await sql.query<{ replica: string; n: string }>(
      `SELECT presence_replica AS replica, count(*) AS n FROM devices WHERE online AND id LIKE 'cl-%' GROUP BY 1`,
    );
    return new Map(rows.map((r) => [r.replica, Number(r.n)]));
  };

  beforeAll(async () => {
    db = (await scratchDatabase())!;
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    dataDir = await mkdtemp(join(tmpdir(), 'fleetline-cluster-'));
    work = await mkdtemp(join(tmpdir(), 'fleetline-cluster-work-'));
    for (let i = 0; i < REPLICAS; i++) ports.push({ http: await freePort(), mqtt: await freePort() });
    // The first start creates the signing keys on the shared volume; the others find them there.
    await start(0);
    await Promise.all(Array.from({ length: REPLICAS - 1 }, (_, i) => start(i + 1)));
    api = new FleetApi(replicas[REPLICAS - 1]!.baseUrl, adminKey);
    await seedSimulatedModel(api, 'sim', ['1.0.0']);
    await api.createModel('detector');
    await api.uploadVersion('detector', '1.0.0', { name: 'weights.bin', bytes: commandArtifact({ size: 50_000, seed: 'c1' }) }, { runtime: 'command' });
    await api.uploadVersion('detector', '2.0.0', { name: 'weights.bin', bytes: commandArtifact({ size: 60_000, seed: 'c2' }) }, { runtime: 'command' });
    const token = await api.createEnrollmentToken('cluster', { fleet: 'cluster' });
    sim = SimGroup.start(replicas[1]!.baseUrl, token, { idPrefix: 'cl', devices: DEVICES });
    const healthScript = await writeHealthScript(work);
    agent = await AgentProcess.create({ config: { runtimes: { command: { command: healthScript, timeoutSeconds: 30 } }, healthCheckTimeoutSeconds: 30 } });
    expect((await agent.enroll(replicas[0]!.baseUrl, token, { id: 'cluster-cam-1' })).code).toBe(0);
    await agent.start();
    await sim.waitOnline(api, 120_000);
  }, 240_000);

  afterAll(async () => {
    await sim?.stop();
    if (agent) {
      if (agent.running) await agent.stop();
      await agent.remove();
    }
    for (const cp of replicas) await cp?.stop();
    await sql?.end();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('spreads the devices over the replicas by id', async () => {
    const spread = await connectionsPerReplica();
    expect([...spread.values()].reduce((a, b) => a + b, 0)).toBe(DEVICES);
    expect(spread.size).toBeGreaterThanOrEqual(2);
  });

  it('SIGKILL of the replica driving a staged rollout loses no device and no report', async () => {
    const holder = await waitFor('a replica to hold the driver lease', leaseHolder, 30_000, 200);
    const rollout = await createRollout(api, {
      model: 'sim',
      version: '1.0.0',
      target: { tags: { fleet: 'cluster' } },
      waves: [
        { percent: 10, bakeSeconds: 1, successPercent: 100 },
        { percent: 50, bakeSeconds: 1, successPercent: 100 },
        { percent: 100, bakeSeconds: 1, successPercent: 100 },
      ],
    });
    await waitForRollout(api, rollout.id, 'wave 1 to start', (r) => r.currentWave >= 1 || !['scheduled', 'running'].includes(r.state), 60_000);
    await replicas[holder]!.kill();
    replicas[holder] = undefined;

    // Another replica takes the lease and carries on; the killed replica's devices reconnect elsewhere.
    const next = await waitFor(
      'another replica to take the lease',
      async () => {
        const h = await leaseHolder();
        return h !== undefined && h !== holder ? h : undefined;
      },
      60_000,
      250,
    );
    expect(next).not.toBe(holder);
    await waitFor(
      'every device online on a live replica',
      async () => {
        const spread = await connectionsPerReplica();
        return !spread.has(replicaId(holder)) && [...spread.values()].reduce((a, b) => a + b, 0) === DEVICES;
      },
      90_000,
      500,
    );
    if (holder === REPLICAS - 1) await start(holder); // it also served the downloads

    const done = await waitForRollout(
      api,
      rollout.id,
      'the rollout to finish',
      (r) => ['completed', 'paused', 'aborted', 'rolled-back'].includes(r.state),
      180_000,
    );
    expect(done.state).toBe('completed');
    const members = await rolloutDevices(api, rollout.id);
    const committed = members.filter((m) => m.state === 'committed').length;
    const skipped = members.filter((m) => m.state === 'skipped');
    // Every simulated device committed; the real agent has no `simulated` runtime and is skipped before anything starts.
    expect(committed).toBe(DEVICES);
    expect(skipped.map((m) => m.deviceId)).toEqual(['cluster-cam-1']);
    const { rows } = await sql.query<{ n: string }>(
      `SELECT count(*) AS n FROM device_models WHERE model = 'sim' AND report_state = 'committed' AND active_version = '1.0.0'`,
    );
    expect(Number(rows[0]!.n)).toBe(DEVICES);
    if (!replicas[holder]) await start(holder);
  });

  it('an assignment made while a device is offline reaches it after every replica has restarted', async () => {
    await api.assign('cluster-cam-1', 'detector', '1.0.0');
    await api.waitForReport('cluster-cam-1', 'detector', '1.0.0', 'committed', 60_000);
    await agent.stop();
    await waitFor('cluster-cam-1 offline', async () => !(await api.device('cluster-cam-1')).online, 30_000, 200);
    await api.assign('cluster-cam-1', 'detector', '2.0.0');

    for (let i = 0; i < REPLICAS; i++) {
      await replicas[i]?.stop();
      replicas[i] = undefined;
    }
    await start(0);
    await Promise.all(Array.from({ length: REPLICAS - 1 }, (_, i) => start(i + 1)));
    api = new FleetApi(replicas[REPLICAS - 1]!.baseUrl, adminKey);

    await agent.start();
    const state = await api.waitForReport('cluster-cam-1', 'detector', '2.0.0', 'committed', 90_000);
    expect(state).toMatchObject({ activeVersion: '2.0.0' });
    expect(await agent.modelStatus('detector')).toMatchObject({ activeVersion: '2.0.0' });
  });
});
