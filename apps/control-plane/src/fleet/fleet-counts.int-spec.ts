import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import semver from 'semver';
import { DataSource, type EntityManager } from 'typeorm';
import { type DeviceCredentials, encodePayload, PROTOCOL_VERSION, topics, type UpdateReport } from '@fleetline/protocol';
import { DevicesRepository } from '../devices/devices.repository.js';
import { rowsOf, toNumber } from '../infra/database/sql-values.js';
import { apiClient, type ApiClient, databaseBackends, eventually, startTestApp, type TestApp, uploadTestVersion } from '../testing/test-app.fixture.js';
import { type FleetCounts, FleetCountsRepository } from './fleet-counts.repository.js';
import type { FleetSummary } from './fleet.service.js';
import { FleetCounts1764239400000 } from './migrations/1764239400000-fleet-counts.js';

/** The counts as a full scan of the device rows gives them: what the running counts must always equal. */
async function fullCount(manager: EntityManager): Promise<FleetCounts> {
  const presence = rowsOf(
    await manager.query(
      `SELECT CASE WHEN decommissioned_at IS NOT NULL THEN 'decommissioned' WHEN online THEN 'online' ELSE 'offline' END AS p, count(*) AS n
         FROM devices GROUP BY 1`,
    ),
  );
  const versions = rowsOf(await manager.query(`SELECT model, active_version, count(*) AS n FROM device_models GROUP BY 1, 2`));
  const counts: FleetCounts = { presence: { online: 0, offline: 0, decommissioned: 0 }, versions: [] };
  for (const r of presence) counts.presence[r['p'] as keyof FleetCounts['presence']] = toNumber(r['n']);
  counts.versions = versions.map((r) => ({ model: String(r['model']), version: (r['active_version'] as string | null) ?? null, devices: toNumber(r['n']) }));
  return counts;
}

function sorted(counts: FleetCounts): FleetCounts {
  const key = (v: { model: string; version: string | null }): string => `${v.model}\u0000${v.version ?? ''}`;
  return { presence: counts.presence, versions: [...counts.versions].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)) };
}

/** Running counts and a full count read in one REPEATABLE READ snapshot: equal with no waiting, whatever is in flight. */
async function compareInOneSnapshot(db: DataSource, repository: FleetCountsRepository): Promise<{ counted: FleetCounts; running: FleetCounts }> {
  return db.transaction('REPEATABLE READ', async (manager) => {
    const counted = sorted(await fullCount(manager));
    const running = sorted(await repository.read(manager));
    return { counted, running };
  });
}

/** The summary GET /api/v1/fleet/summary must answer for these counts (the rule of FleetService, from a full count). */
function expectedSummary(counts: FleetCounts): FleetSummary {
  const total = counts.presence.online + counts.presence.offline;
  const models = [...new Set(counts.versions.map((v) => v.model))].sort();
  return {
    devices: { total, online: counts.presence.online, offline: counts.presence.offline },
    models: models.map((model) => {
      const versions = counts.versions
        .filter((v) => v.model === model && v.version !== null)
        .map((v) => ({ version: v.version!, devices: v.devices }))
        .sort((a, b) => semver.rcompare(a.version, b.version));
      return { model, versions, unassigned: total - versions.reduce((n, v) => n + v.devices, 0) };
    }),
  };
}

describe.each(databaseBackends())('fleet summary from running counts on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;
  let repository: FleetCountsRepository;
  const clients = new Map<string, MqttClient>();
  const credentials = new Map<string, DeviceCredentials>();
  const seqs = new Map<string, number>();

  /** The summary the API answers equals the full count (once the writes in flight have landed), and the snapshot check holds. */
  async function expectSummaryMatchesFullCount(): Promise<FleetSummary> {
    const { counted, running } = await compareInOneSnapshot(db, repository);
    expect(running).toEqual(counted);
    return eventually(
      async () => {
        const summary = (await api.get<FleetSummary>('/api/v1/fleet/summary')).body;
        const expected = expectedSummary(await fullCount(db.manager));
        return JSON.stringify(summary) === JSON.stringify(expected) ? summary : undefined;
      },
      10_000,
      'summary equal to a full count',
    ).catch(async (err: unknown) => {
      // Show the difference rather than a timeout.
      expect((await api.get<FleetSummary>('/api/v1/fleet/summary')).body).toEqual(expectedSummary(await fullCount(db.manager)));
      throw err;
    });
  }

  async function waitFor(what: string, sql: string, expected: number): Promise<void> {
    await eventually(async () => (toNumber(rowsOf(await db.query(sql))[0]?.['n']) === expected ? true : undefined), 10_000, what);
  }

  async function connect(id: string): Promise<MqttClient> {
    const c = credentials.get(id)!;
    const client = await mqtt.connectAsync(t.mqttUrl, { clientId: id, username: id, password: c.secret, protocolVersion: 4, reconnectPeriod: 0, clean: true });
    clients.set(id, client);
    return client;
  }

  async function report(id: string, patch: Partial<UpdateReport>): Promise<void> {
    const seq = (seqs.get(id) ?? 0) + 1;
    seqs.set(id, seq);
    const body: UpdateReport = {
      v: PROTOCOL_VERSION,
      seq,
      model: 'cam',
      version: '1.0.0',
      revision: 1,
      state: 'committed',
      activeVersion: '1.0.0',
      previousVersion: null,
      at: new Date().toISOString(),
      ...patch,
    };
    await clients.get(id)!.publishAsync(topics.reported(id), encodePayload(body), { qos: 1 });
  }

  beforeAll(async () => {
    t = await startTestApp(backend, { ENROLL_RATE_PER_SECOND: '0' });
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
    repository = t.app.get(FleetCountsRepository);
    for (const model of ['cam', 'mic']) expect((await api.post('/api/v1/models', { name: model })).status).toBe(201);
    for (const version of ['1.0.0', '1.1.0', '2.0.0']) await uploadTestVersion(t, 'cam', version);
    await uploadTestVersion(t, 'mic', '1.0.0');
  });

  afterAll(async () => {
    for (const client of clients.values()) client.end(true);
    await t.close();
  });

  it('starts at zero on an empty fleet', async () => {
    const summary = await expectSummaryMatchesFullCount();
    expect(summary.devices).toEqual({ total: 0, online: 0, offline: 0 });
  });

  it('counts enrolled and pre-registered devices', async () => {
    const token = await api.post<{ token: string }>('/api/v1/enrollment-tokens', { name: 'fc', unlimited: true });
    expect(token.status).toBe(201);
    for (let i = 0; i < 6; i++) {
      const res = await api.post<DeviceCredentials>('/api/v1/enroll', { token: token.body.token, id: `fc-${i}` });
      expect(res.status).toBe(201);
      credentials.set(`fc-${i}`, res.body);
    }
    for (const id of ['fc-pre-0', 'fc-pre-1']) {
      const res = await api.post<DeviceCredentials>('/api/v1/devices', { id });
      expect(res.status).toBe(201);
      credentials.set(id, res.body);
    }
    expect((await expectSummaryMatchesFullCount()).devices).toEqual({ total: 8, online: 0, offline: 8 });
  });

  it('follows connections (presence flushes)', async () => {
    for (const id of ['fc-0', 'fc-1', 'fc-2', 'fc-3', 'fc-4', 'fc-pre-0']) await connect(id);
    await waitFor('6 online', `SELECT count(*) AS n FROM devices WHERE online`, 6);
    expect((await expectSummaryMatchesFullCount()).devices).toEqual({ total: 8, online: 6, offline: 2 });
  });

  it('follows assignments and reports that change the active version', async () => {
    for (const id of ['fc-0', 'fc-1', 'fc-2', 'fc-3', 'fc-4'])
      expect((await api.put(`/api/v1/devices/${id}/models/cam`, { version: '1.0.0' })).status).toBe(200);
    expect((await api.put('/api/v1/devices/fc-pre-0/models/mic', { version: '1.0.0' })).status).toBe(200);
    let summary = await expectSummaryMatchesFullCount();
    expect(summary.models).toEqual([
      { model: 'cam', versions: [], unassigned: 8 },
      { model: 'mic', versions: [], unassigned: 8 },
    ]);

    for (const id of ['fc-0', 'fc-1', 'fc-2', 'fc-3', 'fc-4']) await report(id, {});
    await waitFor('5 on cam 1.0.0', `SELECT count(*) AS n FROM device_models WHERE model = 'cam' AND active_version = '1.0.0'`, 5);
    await expectSummaryMatchesFullCount();

    // Two move on to 2.0.0, one to 1.1.0, one rolls back to nothing active (a removal).
    for (const id of ['fc-0', 'fc-1']) await report(id, { version: '2.0.0', revision: 2, activeVersion: '2.0.0', previousVersion: '1.0.0' });
    await report('fc-2', { version: '1.1.0', revision: 2, activeVersion: '1.1.0', previousVersion: '1.0.0' });
    await report('fc-3', { state: 'removed', activeVersion: null });
    await waitFor('2 on cam 2.0.0', `SELECT count(*) AS n FROM device_models WHERE model = 'cam' AND active_version = '2.0.0'`, 2);
    await waitFor('1 on cam 1.1.0', `SELECT count(*) AS n FROM device_models WHERE model = 'cam' AND active_version = '1.1.0'`, 1);
    await waitFor('fc-3 with none', `SELECT count(*) AS n FROM device_models WHERE device_id = 'fc-3' AND active_version IS NULL`, 1);
    summary = await expectSummaryMatchesFullCount();
    expect(summary.models[0]).toEqual({
      model: 'cam',
      versions: [
        { version: '2.0.0', devices: 2 },
        { version: '1.1.0', devices: 1 },
        { version: '1.0.0', devices: 1 },
      ],
      unassigned: 4,
    });
  });

  it('follows disconnects (abrupt and clean) and the sweep of a replica that stopped', async () => {
    clients.get('fc-0')!.stream.destroy();
    await clients.get('fc-1')!.endAsync();
    await waitFor('4 online', `SELECT count(*) AS n FROM devices WHERE online`, 4);
    expect((await expectSummaryMatchesFullCount()).devices).toEqual({ total: 8, online: 4, offline: 4 });

    // The crash sweep of a replica (here: this one's own name) marks its devices offline in one statement.
    expect(await t.app.get(DevicesRepository).markReplicaOffline(t.config.replicaId)).toBe(4);
    expect((await expectSummaryMatchesFullCount()).devices).toEqual({ total: 8, online: 0, offline: 8 });
    await connect('fc-0');
    await waitFor('fc-0 online', `SELECT count(*) AS n FROM devices WHERE online`, 1);
    await expectSummaryMatchesFullCount();
  });

  it('follows decommission and re-registration under the same id', async () => {
    expect((await api.delete('/api/v1/devices/fc-0')).status).toBe(204);
    expect((await api.delete('/api/v1/devices/fc-pre-0')).status).toBe(204);
    let summary = await expectSummaryMatchesFullCount();
    expect(summary.devices).toEqual({ total: 6, online: 0, offline: 6 });
    expect(summary.models.map((m) => m.model)).toEqual(['cam']); // mic's only row went with fc-pre-0
    expect((await repository.read()).presence.decommissioned).toBe(2);

    expect((await api.post('/api/v1/devices', { id: 'fc-0' })).status).toBe(201);
    summary = await expectSummaryMatchesFullCount();
    expect(summary.devices.total).toBe(7);
    expect((await repository.read()).presence.decommissioned).toBe(1);
  });

  it('answers the same after compaction, which empties the deltas', async () => {
    const before = (await api.get<FleetSummary>('/api/v1/fleet/summary')).body;
    await repository.compact();
    const deltas = rowsOf(await db.query(`SELECT count(*) AS n FROM fleet_count_deltas`));
    expect(toNumber(deltas[0]?.['n'])).toBe(0);
    expect((await api.get<FleetSummary>('/api/v1/fleet/summary')).body).toEqual(before);
    await expectSummaryMatchesFullCount();
    // Zero counts are dropped, not kept as rows.
    expect(toNumber(rowsOf(await db.query(`SELECT count(*) AS n FROM fleet_counts WHERE devices = 0`))[0]?.['n'])).toBe(0);
  });

  it('stays exact under concurrent set-based writes and compactions (several connections, as several replicas)', async () => {
    const devices = t.app.get(DevicesRepository);
    const ids = Array.from({ length: 200 }, (_, i) => `fc-bulk-${String(i).padStart(3, '0')}`);
    await db.query(`INSERT INTO devices (id) SELECT unnest($1::text[])`, [ids]);
    await db.query(`INSERT INTO device_models (device_id, model, active_version) SELECT unnest($1::text[]), 'cam', '1.0.0'`, [ids]);
    const at = (ms: number): string => new Date(Date.now() + ms).toISOString();
    const writes: Promise<unknown>[] = [];
    for (let round = 0; round < 10; round++) {
      const slice = ids.filter((_, i) => i % 10 === round);
      writes.push(
        devices.applyPresence(
          slice,
          slice.map(() => round % 2 === 0),
          slice.map(() => at(round)),
          slice.map(() => `s-${round}`),
          slice.map(() => 'elsewhere'),
        ),
        db.query(`UPDATE device_models SET active_version = $2 WHERE device_id = ANY($1::text[]) AND model = 'cam'`, [
          slice,
          round % 3 === 0 ? '2.0.0' : '1.1.0',
        ]),
        repository.compact(),
      );
      if (round % 4 === 0) writes.push(db.query(`DELETE FROM devices WHERE id = ANY($1::text[])`, [slice.slice(0, 3)]));
    }
    await Promise.all(writes);
    await repository.compact();
    await expectSummaryMatchesFullCount();
  });
});

type Op =
  | { kind: 'insert'; ids: number[]; online: boolean }
  | { kind: 'presence'; ids: number[]; online: boolean }
  | { kind: 'decommission'; ids: number[] }
  | { kind: 'reenroll'; ids: number[] }
  | { kind: 'delete'; ids: number[] }
  | { kind: 'models'; ids: number[]; model: string; version: string | null }
  | { kind: 'rolled-back'; ids: number[] }
  | { kind: 'compact' };

const idsArb = fc.uniqueArray(fc.integer({ min: 0, max: 24 }), { minLength: 1, maxLength: 8 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), ids: idsArb, online: fc.boolean() }),
  fc.record({ kind: fc.constant('presence' as const), ids: idsArb, online: fc.boolean() }),
  fc.record({ kind: fc.constant('decommission' as const), ids: idsArb }),
  fc.record({ kind: fc.constant('reenroll' as const), ids: idsArb }),
  fc.record({ kind: fc.constant('delete' as const), ids: idsArb }),
  fc.record({
    kind: fc.constant('models' as const),
    ids: idsArb,
    model: fc.constantFrom('m1', 'm2'),
    version: fc.constantFrom(null, '1.0.0', '2.0.0'),
  }),
  fc.record({ kind: fc.constant('rolled-back' as const), ids: idsArb }),
  fc.constant({ kind: 'compact' as const }),
);

/** The statement shapes the control plane's writers use (single-row, set-based, upserts, cascades). */
async function apply(manager: EntityManager, op: Exclude<Op, { kind: 'compact' | 'rolled-back' }>, prefix: string): Promise<void> {
  const ids = op.ids.map((i) => `${prefix}-${i}`);
  switch (op.kind) {
    case 'insert':
      await manager.query(`INSERT INTO devices (id, online) SELECT unnest($1::text[]), $2 ON CONFLICT (id) DO NOTHING`, [ids, op.online]);
      return;
    case 'presence':
      await manager.query(
        `UPDATE devices d SET online = u.online, last_seen_at = now() FROM unnest($1::text[], $2::bool[]) AS u(id, online)
          WHERE d.id = u.id AND d.decommissioned_at IS NULL`,
        [ids, ids.map(() => op.online)],
      );
      return;
    case 'decommission':
      await manager.query(`UPDATE devices SET decommissioned_at = now(), online = false WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL`, [ids]);
      await manager.query(`DELETE FROM device_models WHERE device_id = ANY($1::text[])`, [ids]);
      return;
    case 'reenroll':
      await manager.query(
        `INSERT INTO devices (id) SELECT unnest($1::text[])
         ON CONFLICT (id) DO UPDATE SET decommissioned_at = NULL, online = false WHERE devices.decommissioned_at IS NOT NULL`,
        [ids],
      );
      return;
    case 'delete':
      await manager.query(`DELETE FROM devices WHERE id = ANY($1::text[])`, [ids]);
      return;
    case 'models':
      await manager.query(
        `INSERT INTO device_models (device_id, model, active_version)
         SELECT d.id, $2, $3 FROM devices d WHERE d.id = ANY($1::text[]) AND d.decommissioned_at IS NULL
         ON CONFLICT (device_id, model) DO UPDATE SET active_version = EXCLUDED.active_version`,
        [ids, op.model, op.version],
      );
      return;
  }
}

describe.each(databaseBackends())('running fleet counts against a full count (property) on %s', (backend) => {
  let t: TestApp;
  let db: DataSource;
  let repository: FleetCountsRepository;

  beforeAll(async () => {
    t = await startTestApp(backend);
    db = t.app.get(DataSource);
    repository = t.app.get(FleetCountsRepository);
  });
  afterAll(() => t.close());

  it('backfills the counts from the rows already there when the migration runs', async () => {
    const migration = new FleetCounts1764239400000();
    const runner = db.createQueryRunner();
    await runner.startTransaction();
    try {
      // Undone, rows written without triggers, done again: all in one transaction, as a migration runs.
      await migration.down(runner);
      await runner.query(
        `INSERT INTO devices (id, online, decommissioned_at)
         SELECT 'bf-' || i, i % 3 = 0, CASE WHEN i % 7 = 0 THEN now() END FROM generate_series(1, 50) AS i`,
      );
      await runner.query(
        `INSERT INTO device_models (device_id, model, active_version)
         SELECT 'bf-' || i, 'bf', CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN '1.0.0' ELSE '2.0.0' END FROM generate_series(1, 50) AS i WHERE i % 7 <> 0`,
      );
      await migration.up(runner);
      await runner.commitTransaction();
    } catch (err) {
      await runner.rollbackTransaction();
      throw err;
    } finally {
      await runner.release();
    }
    const { counted, running } = await compareInOneSnapshot(db, repository);
    expect(running).toEqual(counted);
    expect(running.presence).toEqual({ online: 14, offline: 29, decommissioned: 7 });
  });

  it('equal after every step of any sequence of writes, rollbacks and compactions', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const prefix = `p${run++}`;
        for (const op of ops) {
          if (op.kind === 'compact') await repository.compact();
          else if (op.kind === 'rolled-back') {
            // Writes of a transaction that fails leave no delta behind.
            await db
              .transaction(async (manager) => {
                await apply(manager, { kind: 'insert', ids: op.ids, online: true }, prefix);
                await apply(manager, { kind: 'models', ids: op.ids, model: 'm1', version: '2.0.0' }, prefix);
                throw new Error('rolled back on purpose');
              })
              .catch((err: unknown) => {
                if (!(err instanceof Error) || err.message !== 'rolled back on purpose') throw err;
              });
          } else await db.transaction((manager) => apply(manager, op, prefix));
          const { counted, running } = await compareInOneSnapshot(db, repository);
          expect(running).toEqual(counted);
        }
      }),
      { numRuns: 30 },
    );
  }, 120_000);
});
