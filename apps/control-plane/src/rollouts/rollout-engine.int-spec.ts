import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DesiredModel } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { DriverLease } from './driver-lease.js';
import { RolloutEngine } from './rollout-engine.js';
import type { RolloutDeviceRow, RolloutEventRow } from './rollout.repository.js';
import type { CreatedRollout, RolloutDetail } from './rollouts.service.js';
import { type FakeAgent, type FakeOutcome, startFakeAgent } from './testing/fake-agent.js';
import { seedDevices, seedModel } from './testing/rollout-fixtures.js';

const FUTURE = '2099-01-01T00:00:00Z';
const DEVICES = 6;

describe.each(databaseBackends())('rollout engine on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  const agents: FakeAgent[] = [];
  /** Per test: what each device does with an assignment. */
  let policy: (deviceId: string, desired: DesiredModel, attempt: number) => FakeOutcome = () => 'commit';

  const detail = async (id: string): Promise<RolloutDetail> => (await api.get<RolloutDetail>(`/api/v1/rollouts/${id}`)).body;
  const waitForState = (id: string, state: string, timeoutMs = 20_000): Promise<RolloutDetail> =>
    eventually(
      async () => {
        const d = await detail(id);
        return d.state === state ? d : undefined;
      },
      timeoutMs,
      `rollout ${id} to be ${state}`,
    );
  const members = async (id: string, wave?: number): Promise<RolloutDeviceRow[]> =>
    (await api.get<{ items: RolloutDeviceRow[] }>(`/api/v1/rollouts/${id}/devices?limit=1000${wave === undefined ? '' : `&wave=${wave}`}`)).body.items;
  const events = async (id: string): Promise<RolloutEventRow[]> =>
    (await api.get<{ items: RolloutEventRow[] }>(`/api/v1/rollouts/${id}/events?limit=1000`)).body.items;
  const receivedOf = (version: string): Map<string, number> => new Map(agents.map((a) => [a.id, a.received.filter((d) => d.version === version).length]));

  beforeAll(async () => {
    t = await startTestApp(backend);
    api = apiClient(t.baseUrl, t.adminKey);
    await seedModel(
      t,
      api,
      'detector',
      ['2.1.0', '2.2.0', '2.3.0', '2.4.0'].map((version) => ({ version })),
    );
    for (let i = 1; i <= DEVICES; i++) {
      const created = await api.post<{ deviceId: string; secret: string }>('/api/v1/devices', { id: `edge-${i}`, tags: { fleet: 'mqtt' } });
      agents.push(await startFakeAgent(t.mqttUrl, created.body, (d, attempt) => policy(`edge-${i}`, d, attempt)));
    }
  }, 180_000);
  afterAll(async () => {
    for (const a of agents) await a.close();
    await t.close();
  });

  it('drives a 3-wave rollout to completion from real MQTT reports, one wave after the other', async () => {
    policy = () => 'commit';
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ count: 1, bakeSeconds: 1 }, { percent: 50 }, { percent: 100 }],
    });
    expect(created.status).toBe(201);
    expect(created.body.waves.map((w) => w.size)).toEqual([1, 2, 3]);
    const done = await waitForState(created.body.id, 'completed');
    expect(done.counts).toEqual({ committed: DEVICES });
    expect(done.finishedAt).not.toBeNull();
    expect(agents.every((a) => a.active.get('detector') === '2.1.0')).toBe(true);
    // Each device was assigned the version once (one revision; QoS 1 and the answer to a hello
    // may deliver that assignment twice), and wave order held: wave k devices were told after wave k-1 committed.
    expect(agents.map((a) => new Set(a.received.filter((d) => d.version === '2.1.0').map((d) => d.revision)).size)).toEqual(Array(DEVICES).fill(1));
    const told = new Map(agents.map((a) => [a.id, new Date(a.received.find((d) => d.version === '2.1.0')!.assignedAt).getTime()]));
    const byWave = await Promise.all([0, 1, 2].map((w) => members(created.body.id, w)));
    const lastOf = (w: number): number => Math.max(...byWave[w]!.map((m) => told.get(m.deviceId)!));
    const firstOf = (w: number): number => Math.min(...byWave[w]!.map((m) => told.get(m.deviceId)!));
    expect(firstOf(1)).toBeGreaterThanOrEqual(lastOf(0) + 1000); // bakeSeconds 1 on wave 0
    expect(firstOf(2)).toBeGreaterThanOrEqual(lastOf(1));
    const log = (await events(created.body.id)).reverse();
    expect(log.filter((e) => e.type === 'wave-started').map((e) => e.wave)).toEqual([0, 1, 2]);
    expect(log.filter((e) => e.type === 'wave-succeeded').map((e) => e.wave)).toEqual([0, 1, 2]);
    expect(log.at(-1)).toMatchObject({ type: 'completed' });
    expect(log.find((e) => e.type === 'wave-succeeded')?.data).toMatchObject({ members: 1, succeeded: 1, successPercent: 100 });
  });

  it('pauses on the failure condition, and abort reverts the devices that took the version', async () => {
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.2.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ percent: 50, failure: { count: 1, minExecuted: 1 } }, { percent: 100 }],
      onFailure: 'pause',
      startAt: FUTURE,
    });
    const wave0 = (await members(created.body.id, 0)).map((m) => m.deviceId);
    const wave1 = (await members(created.body.id, 1)).map((m) => m.deviceId);
    expect(wave0).toHaveLength(3);
    const broken = wave0[0]!;
    policy = (id, d) => (id === broken && d.version === '2.2.0' ? { fail: 'health-check-failed' } : 'commit');
    // Manual approval starts wave 0 of a scheduled rollout now.
    expect((await api.post(`/api/v1/rollouts/${created.body.id}/advance`)).status).toBe(200);
    const paused = await waitForState(created.body.id, 'paused');
    expect(paused.stateReason).toMatch(/failure condition met in wave 1: 1 failed/);
    const pauseEvent = (await events(created.body.id)).find((e) => e.type === 'paused');
    expect(pauseEvent?.data).toMatchObject({ failed: 1, failure: { count: 1, minExecuted: 1 } });
    const failed = (await members(created.body.id, 0)).find((m) => m.deviceId === broken);
    expect(failed).toMatchObject({ state: 'failed', failureCode: 'health-check-failed' });

    expect((await api.post(`/api/v1/rollouts/${created.body.id}/abort`)).status).toBe(200);
    const rolledBack = await waitForState(created.body.id, 'rolled-back');
    expect(rolledBack.waves[0]!.counts).toEqual({ 'rolled-back': 3 });
    expect(rolledBack.waves[1]!.counts).toEqual({ pending: 3 });
    await eventually(
      () => (wave0.every((id) => agents.find((a) => a.id === id)!.active.get('detector') === '2.1.0') ? true : undefined),
      10_000,
      'devices reverted',
    );
    // Devices of the wave that never started were never told about 2.2.0.
    const received = receivedOf('2.2.0');
    for (const id of wave1) expect([id, received.get(id)]).toEqual([id, 0]);
  });

  it('retries transient failures with backoff and times out silent devices', async () => {
    const flaky = 'edge-1';
    const silent = 'edge-2';
    policy = (id, d, attempt) =>
      d.version !== '2.3.0' ? 'commit' : id === silent ? 'ignore' : id === flaky && attempt === 1 ? { fail: 'download-failed' } : 'commit';
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.3.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ percent: 100 }],
      retries: { max: 2, backoffSeconds: 1 },
      timeoutSeconds: 5,
    });
    const stalled = await eventually(
      async () => {
        const log = await events(created.body.id);
        return log.some((e) => e.type === 'stalled') ? log : undefined;
      },
      20_000,
      'stalled wave',
    );
    expect(stalled.some((e) => e.type === 'retries-scheduled')).toBe(true);
    expect(stalled.some((e) => e.type === 'devices-timed-out')).toBe(true);
    const all = await members(created.body.id);
    expect(all.find((m) => m.deviceId === flaky)).toMatchObject({ state: 'committed', attempts: 2 });
    expect(all.find((m) => m.deviceId === silent)).toMatchObject({ state: 'timed-out' });
    expect((await detail(created.body.id)).state).toBe('running');
    // Operator retry: the silent device answers this time and the rollout completes.
    policy = () => 'commit';
    expect((await api.post(`/api/v1/rollouts/${created.body.id}/retry`)).status).toBe(200);
    await waitForState(created.body.id, 'completed');
  });

  it('download-only stops at downloaded until the install command', async () => {
    policy = () => 'commit';
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.4.0',
      action: 'download-only',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ percent: 50 }, { percent: 100 }],
    });
    await eventually(async () => ((await detail(created.body.id)).counts.downloaded === DEVICES ? true : undefined), 20_000, 'all downloaded');
    expect(agents.every((a) => a.active.get('detector') === '2.3.0')).toBe(true);
    expect((await detail(created.body.id)).state).toBe('running');
    expect((await api.post(`/api/v1/rollouts/${created.body.id}/install`)).status).toBe(200);
    const done = await waitForState(created.body.id, 'completed');
    expect(done.counts).toEqual({ committed: DEVICES });
    expect(agents.every((a) => a.active.get('detector') === '2.4.0')).toBe(true);
    expect(
      agents.every(
        (a) =>
          a.received
            .filter((d) => d.version === '2.4.0')
            .map((d) => d.action)
            .join() === 'download-only,install',
      ),
    ).toBe(true);
  });

  it('re-publishes devices marked notified before a crash, and streams progress over SSE', async () => {
    policy = () => 'commit';
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ percent: 100 }],
      startAt: FUTURE,
    });
    const id = created.body.id;
    // The state a crash between "mark notified" and "publish" leaves behind.
    await t.app.get(DataSource).query(`UPDATE rollouts SET state = 'running', current_wave = 0, started_at = now() WHERE id = $1`, [id]);
    await t.app.get(DataSource).query(`UPDATE rollout_devices SET state = 'notified', notified_at = now(), attempts = 1 WHERE rollout_id = $1`, [id]);
    const before = receivedOf('2.1.0');
    const stream = await fetch(`${t.baseUrl}/api/v1/rollouts/${id}/stream?key=${encodeURIComponent(t.adminKey)}`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    t.app.get(RolloutEngine).requestRecovery();
    const done = await waitForState(id, 'completed');
    expect(done.counts).toEqual({ committed: DEVICES });
    const after = receivedOf('2.1.0');
    for (const a of agents) expect(after.get(a.id)).toBe((before.get(a.id) ?? 0) + 1);
    expect((await events(id)).some((e) => e.type === 'republished' && e.data['count'] === DEVICES)).toBe(true);
    const text = await stream.text(); // the stream ends after the rollout finished
    expect(text).toMatch(/event: progress/);
    expect(text).toContain('"state":"completed"');
  });

  it('holds a wave whose health gates have too few samples, and lets an operator advance it', async () => {
    policy = () => 'commit';
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.2.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [
        {
          percent: 50,
          gates: [
            { metric: 'error_rate', maxIncrease: 0.01 },
            { metric: 'latency_p95', maxRatio: 1.5 },
          ],
          minSamples: 1000,
          windowSeconds: 60,
        },
        { percent: 100 },
      ],
      onGateFailure: 'rollback',
    });
    expect(created.status).toBe(201);
    const held = await eventually(
      async () => {
        const log = await events(created.body.id);
        return log.some((e) => e.type === 'gates-pending') ? detail(created.body.id) : undefined;
      },
      20_000,
      'gates pending',
    );
    expect(held.state).toBe('running');
    expect(held.currentWave).toBe(0);
    expect(held.waves[0]!.spec.onGateFailure).toBe('rollback');
    const gates = held.waves[0]!.gates as { results: { metric: string; passed: boolean | null }[] };
    expect(gates.results.map((g) => [g.metric, g.passed])).toEqual([
      ['error_rate', null],
      ['latency_p95', null],
    ]);
    expect((await api.post(`/api/v1/rollouts/${created.body.id}/advance`)).status).toBe(200);
    await waitForState(created.body.id, 'completed');
  });

  it('adds devices that start matching a dynamic rollout to its last wave', async () => {
    await seedDevices(t, 'dyn-', 3, { tags: { pool: 'dynamic' } });
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'dynamic' } },
      waves: [{ count: 1 }, { percent: 100 }],
      dynamic: true,
      timeoutSeconds: 3600,
    });
    expect(created.body.targetCount).toBe(3);
    await seedDevices(t, 'dyn-late-', 2, { tags: { pool: 'dynamic' } });
    const joined = await eventually(
      async () => {
        const d = await detail(created.body.id);
        return d.targetCount === 5 ? d : undefined;
      },
      20_000,
      'late devices to join',
    );
    expect(joined.waves[1]!.size).toBe(4);
    const late = (await members(created.body.id)).filter((m) => m.deviceId.startsWith('dyn-late-'));
    expect(late.map((m) => m.wave)).toEqual([1, 1]);
    expect((await events(created.body.id)).some((e) => e.type === 'devices-joined' && e.data['joined'] === 2)).toBe(true);
    expect((await api.post(`/api/v1/rollouts/${created.body.id}/cancel`)).status).toBe(200);
  });

  it('keeps following devices still installing after the rollout completed at its success threshold', async () => {
    const slow = 'edge-3';
    const silent = 'edge-4';
    policy = (id, d) => (d.version !== '2.3.0' ? 'commit' : id === silent ? 'ignore' : id === slow ? { commitAfterMs: 2_500 } : 'commit');
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.3.0',
      target: { tags: { fleet: 'mqtt' } },
      waves: [{ percent: 100, successPercent: 60 }],
      timeoutSeconds: 8,
    });
    expect(created.status).toBe(201);
    const completed = await waitForState(created.body.id, 'completed');
    // Completion came while the silent device (and usually the slow one) had not finished.
    expect(completed.counts['committed']).toBeGreaterThanOrEqual(4);
    expect(completed.counts['committed']).toBeLessThan(DEVICES);
    const settled = await eventually(
      async () => {
        const d = await detail(created.body.id);
        return d.counts['timed-out'] === 1 ? d : undefined;
      },
      30_000,
      'the silent device to time out after completion',
    );
    expect(settled.state).toBe('completed');
    expect(settled.counts).toEqual({ committed: DEVICES - 1, 'timed-out': 1 });
    const all = await members(created.body.id);
    expect(all.find((m) => m.deviceId === slow)).toMatchObject({ state: 'committed' });
    expect(all.find((m) => m.deviceId === silent)).toMatchObject({ state: 'timed-out' });
    const log = (await events(created.body.id)).reverse().map((e) => e.type);
    expect(log.indexOf('devices-timed-out')).toBeGreaterThan(log.indexOf('completed'));
  });

  it('respects maxInFlight and tells nobody outside maintenance windows', async () => {
    await seedDevices(t, 'throttle-', 10, { tags: { pool: 'throttle' } });
    const throttled = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'throttle' } },
      waves: [{ percent: 100 }],
      maxInFlight: 3,
    });
    await eventually(async () => ((await detail(throttled.body.id)).counts.notified === 3 ? true : undefined), 10_000, '3 in flight');
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // several ticks later: still capped (nobody answers)
    expect((await detail(throttled.body.id)).counts).toEqual({ notified: 3, pending: 7 });
    await api.post(`/api/v1/rollouts/${throttled.body.id}/cancel`);

    await seedDevices(t, 'window-', 4, { tags: { pool: 'window' } });
    // A one-hour window that opens twelve hours from now (UTC): closed during this test.
    const closedHour = (new Date().getUTCHours() + 12) % 24;
    const windowed = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'window' } },
      waves: [{ percent: 100 }],
      maintenanceWindows: [{ cron: `0 ${closedHour} * * *`, durationSeconds: 3600, timeZone: 'UTC' }],
    });
    const closed = await eventually(
      async () => {
        const log = await events(windowed.body.id);
        return log.find((e) => e.type.startsWith('window-closed')) ?? undefined;
      },
      10_000,
      'window-closed event',
    );
    expect(closed.message).toMatch(/outside maintenance windows; next opens/);
    expect((await detail(windowed.body.id)).counts).toEqual({ pending: 4 });
    await api.post(`/api/v1/rollouts/${windowed.body.id}/cancel`);
  });

  it('resumes a ramped rollout at its pace: what a pause held back is not released in a burst', async () => {
    await seedDevices(t, 'ramp-', 60, { tags: { pool: 'ramp' } });
    const created = await api.post<CreatedRollout>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.1.0',
      target: { tags: { pool: 'ramp' } },
      waves: [{ percent: 100 }],
      ramp: { ratePerMinute: 120, growthFactor: 1 },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect((await api.post(`/api/v1/rollouts/${id}/pause`)).status).toBe(200);
    // Paused for 15 s: at 2 devices a second, a ramp that kept counting would owe 30 at once.
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    const told = async (): Promise<number> => {
      const d = await detail(id);
      return d.targetCount - (d.counts.pending ?? 0);
    };
    const before = await told();
    expect((await api.post(`/api/v1/rollouts/${id}/resume`)).status).toBe(200);
    await eventually(async () => ((await told()) > before ? true : undefined), 10_000, 'the ramp to go on');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // At most the pace of ~2.5 s (plus the one device carried over), not the 30 of the pause.
    expect((await told()) - before).toBeLessThanOrEqual(8);
    await api.post(`/api/v1/rollouts/${id}/cancel`);
  });

  it('ends a running rollout at once when a higher-priority rollout takes all its devices, and only then', async () => {
    const pool = await seedDevices(t, 'stripped-', 6, { tags: { pool: 'stripped' } });
    const body = { model: 'detector', version: '2.1.0', waves: [{ count: 2, bakeSeconds: 3600 }, { percent: 100 }] };
    const old = await api.post<CreatedRollout>('/api/v1/rollouts', { ...body, target: { tags: { pool: 'stripped' } } });
    expect(old.status).toBe(201);
    const id = old.body.id;
    // Running, wave 1 told (the seeded devices never answer).
    await eventually(async () => ((await detail(id)).counts.notified === 2 ? true : undefined), 10_000, 'wave 1 notified');

    // A higher priority takes only some of them: the old rollout goes on with the others.
    const some = await api.post<CreatedRollout>('/api/v1/rollouts', { ...body, target: { deviceIds: pool.slice(0, 3) }, priority: 3, startAt: FUTURE });
    expect(some.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // several ticks
    expect((await detail(id)).state).toBe('running');

    // Then another takes all the rest (and one device of the first): every member of the old rollout is skipped.
    const rest = await api.post<CreatedRollout>('/api/v1/rollouts', { ...body, target: { deviceIds: pool.slice(2) }, priority: 5, startAt: FUTURE });
    expect(rest.status).toBe(201);
    const ended = await waitForState(id, 'cancelled', 10_000);
    expect(ended.counts).toEqual({ skipped: 6 });
    expect(ended.finishedAt).not.toBeNull();
    expect(ended.stateReason).toBe('no device left to act on: every member was released to a higher-priority rollout');
    const log = await events(id);
    expect(log.find((e) => e.type === 'cancelled')?.data).toEqual({
      cause: 'no-devices-left',
      members: 6,
      released: 6,
      reasons: {
        [`released to higher-priority rollout ${some.body.id} (priority 3)`]: 3,
        [`released to higher-priority rollout ${rest.body.id} (priority 5)`]: 3,
      },
    });
    // Ended long before its bake: the wave never advanced, and the engine drives it no more.
    expect(log.filter((e) => e.type === 'wave-started').map((e) => e.wave)).toEqual([0]);
    const running = (await api.get<{ items: { id: string }[] }>('/api/v1/rollouts?state=running&limit=1000')).body.items;
    expect(running.map((r) => r.id)).not.toContain(id);
    // The first taker lost one of its three devices to the second and holds the other two: it stays.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await detail(some.body.id)).state).toBe('scheduled');
    for (const r of [some, rest]) await api.post(`/api/v1/rollouts/${r.body.id}/cancel`);
  });

  if (backend === 'postgres') {
    it('lets exactly one of several replicas drive, and another take over when it stops', async () => {
      const replicas = [await startTestApp('pglite', { DATABASE_URL: t.databaseUrl! }), await startTestApp('pglite', { DATABASE_URL: t.databaseUrl! })];
      try {
        const drivers = () => [t, ...replicas].map((x) => x.app.get(RolloutEngine).isDriver());
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        expect(drivers()).toEqual([true, false, false]);
        await t.app.get(DriverLease).stop();
        const after = await eventually(
          () => {
            const d = drivers();
            return d.filter(Boolean).length === 1 ? d : undefined;
          },
          10_000,
          'a new driver',
        );
        expect(after[0]).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        expect(drivers().filter(Boolean)).toHaveLength(1);
      } finally {
        for (const r of replicas) await r.close();
      }
    });
  }
});
