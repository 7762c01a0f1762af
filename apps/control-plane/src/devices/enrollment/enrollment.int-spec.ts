import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mqtt from 'mqtt';
import { DataSource } from 'typeorm';
import { createHash } from 'node:crypto';
import { type DeviceCredentials, deviceCredentialsSchema, parseEnrollmentToken } from '@fleetline/protocol';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';

interface EnrollAnswer {
  status: number;
  body: DeviceCredentials & { code?: string; message?: string };
}

const BURST = 10_000;
const IN_FLIGHT = 200;

/** Runs `count` jobs with at most `concurrency` running at once; answers in job order. */
async function pooled<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

function tally(answers: EnrollAnswer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const key = a.status === 201 ? '201' : `${a.status} ${a.body.code ?? '?'}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe.each(databaseBackends())('group-committed enrollment on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let db: DataSource;

  const enroll = async (body: Record<string, unknown>): Promise<EnrollAnswer> => {
    const response = await fetch(`${t.baseUrl}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as EnrollAnswer['body'] };
  };
  const createToken = async (body: Record<string, unknown>): Promise<{ id: string; token: string; rootSha256: string }> => {
    const res = await api.post<{ id: string; token: string; rootSha256: string }>('/api/v1/enrollment-tokens', body);
    expect(res.status).toBe(201);
    return res.body;
  };
  const tokenUses = async (id: string): Promise<number> =>
    Number(((await db.query(`SELECT uses FROM enrollment_tokens WHERE id = $1`, [id])) as { uses: number }[])[0]!.uses);
  const devicesOf = async (tokenId: string): Promise<number> =>
    Number(
      (
        (await db.query(`SELECT count(*)::int AS n FROM devices WHERE enrollment_token_id = $1 AND decommissioned_at IS NULL`, [tokenId])) as { n: number }[]
      )[0]!.n,
    );

  beforeAll(async () => {
    // 10,000 enrollments from one address: this suite is about the group commit, not the per-source limit.
    t = await startTestApp(backend, { ENROLL_RATE_PER_SECOND: '0' });
    api = apiClient(t.baseUrl, t.adminKey);
    db = t.app.get(DataSource);
  });
  afterAll(() => t.close());

  it(`enrolls a burst of ${BURST.toLocaleString('en-US')} devices (${IN_FLIGHT} in flight) without a failure, and MQTT connects are not starved meanwhile`, async () => {
    const { id: tokenId, token } = await createToken({ name: 'burst', unlimited: true, tags: { batch: 'burst' }, deviceTagKeys: ['n'] });
    // Devices that connect while the burst runs: each first connect is a credential lookup on the
    // same database (on PGlite, the same single backend) the enrollment batches write to.
    const probes: { id: string; secret: string }[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await api.post<DeviceCredentials>('/api/v1/devices', { id: `probe-${i}` });
      expect(res.status).toBe(201);
      probes.push({ id: `probe-${i}`, secret: res.body.secret });
    }
    let bursting = true;
    const connectTimes: number[] = [];
    const probing = (async () => {
      for (const probe of probes) {
        if (!bursting) break;
        const started = performance.now();
        const client = await mqtt.connectAsync(t.mqttUrl, {
          clientId: probe.id,
          username: probe.id,
          password: probe.secret,
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 30_000,
        });
        connectTimes.push(performance.now() - started);
        await client.endAsync();
      }
    })();

    const started = performance.now();
    const answers = await pooled(BURST, IN_FLIGHT, (i) => enroll({ token, id: `burst-${String(i).padStart(5, '0')}`, tags: { n: String(i) } }));
    const seconds = (performance.now() - started) / 1000;
    bursting = false;
    await probing;
    process.stderr.write(
      `[${backend}] ${BURST} enrollments in ${seconds.toFixed(1)} s (${Math.round(BURST / seconds)}/s); MQTT connects during the burst: ${connectTimes
        .map((ms) => ms.toFixed(0))
        .join(', ')} ms\n`,
    );

    expect(tally(answers)).toEqual({ '201': BURST });
    const ids = answers.map((a) => a.body.deviceId);
    expect(new Set(ids).size).toBe(BURST);
    expect(new Set(answers.map((a) => a.body.secret)).size).toBe(BURST);
    expect(deviceCredentialsSchema.parse(answers[BURST - 1]!.body).deviceId).toBe(`burst-${String(BURST - 1).padStart(5, '0')}`);
    expect(await devicesOf(tokenId)).toBe(BURST);
    expect(await tokenUses(tokenId)).toBe(BURST);
    // Token tags merged over the requested ones, per device.
    const sample = (await db.query(`SELECT tags FROM devices WHERE id = 'burst-04321'`)) as { tags: Record<string, string> }[];
    expect(sample[0]!.tags).toEqual({ n: '4321', batch: 'burst' });
    // At least one probe connected during the burst, and none waited behind the whole burst.
    expect(connectTimes.length).toBeGreaterThan(0);
    expect(Math.max(...connectTimes)).toBeLessThan(5_000);
    // Each enrolled secret works at once (the credential cache was not left holding a stale answer).
    const last = answers[BURST - 1]!.body;
    const device = await mqtt.connectAsync(t.mqttUrl, {
      clientId: last.deviceId,
      username: last.deviceId,
      password: last.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await device.endAsync();
  }, 300_000);

  it('grants exactly max_uses of 1,000 concurrent requests and refuses the rest as used up', async () => {
    const { id: tokenId, token } = await createToken({ name: 'limited', maxUses: 500 });
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => enroll({ token, id: `limited-${i}` })));
    expect(tally(answers)).toEqual({ '201': 500, '403 enrollment-token-used-up': 500 });
    expect(await tokenUses(tokenId)).toBe(500);
    expect(await devicesOf(tokenId)).toBe(500);
    const refused = answers.find((a) => a.status === 403)!;
    expect(refused.body.message).toBe('enrollment token "limited" has been used 500 of 500 times');
  }, 120_000);

  it('refuses duplicates in a batch without using the token, and takes over decommissioned ids', async () => {
    const { id: tokenId, token } = await createToken({ name: 'dups', maxUses: 4 });
    expect((await api.post('/api/v1/devices', { id: 'dup-live' })).status).toBe(201);
    expect((await api.post('/api/v1/devices', { id: 'dup-gone' })).status).toBe(201);
    expect((await api.delete('/api/v1/devices/dup-gone')).status).toBe(204);
    // Concurrent, so they share batches: the live id and the second request for 'dup-a' are refused
    // without taking a use, which leaves enough uses for every other request.
    const answers = await Promise.all(
      ['dup-live', 'dup-a', 'dup-a', 'dup-gone', 'dup-b', 'dup-c'].map((id) =>
        enroll({ token, id, inventory: { hardwareClass: 'jetson', os: 'linux', arch: 'arm64', agentVersion: '1.2.3' } }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([409, 201, 409, 201, 201, 201]);
    expect(answers[0]!.body.code).toBe('duplicate-device');
    expect(await tokenUses(tokenId)).toBe(4);
    const gone = (await db.query(`SELECT decommissioned_at, enrollment_token_id, hardware_class, agent_version FROM devices WHERE id = 'dup-gone'`)) as Record<
      string,
      unknown
    >[];
    expect(gone[0]).toMatchObject({ decommissioned_at: null, enrollment_token_id: tokenId, hardware_class: 'jetson', agent_version: '1.2.3' });
  });

  it('answers 503 for the requests of a batch the database refused, with nothing of that batch written', async () => {
    const { id: tokenId, token } = await createToken({ name: 'failing', unlimited: true });
    // A database-side failure for one id makes its whole batch roll back.
    await db.query(`CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id LIKE 'boom-%' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$`);
    await db.query(`CREATE TRIGGER fail_boom BEFORE INSERT ON devices FOR EACH ROW EXECUTE FUNCTION fail_boom()`);
    try {
      const ids = Array.from({ length: 300 }, (_, i) => (i === 150 ? 'boom-1' : `fine-${i}`));
      const answers = await Promise.all(ids.map((id) => enroll({ token, id })));
      const byStatus = tally(answers);
      expect(Object.keys(byStatus).sort()).toEqual(['201', '503 enrollment-unavailable']);
      expect(answers[150]!.status).toBe(503);
      expect(answers[150]!.body.message).toMatch(/nothing was stored/);
      const written = new Set(((await db.query(`SELECT id FROM devices WHERE enrollment_token_id = $1`, [tokenId])) as { id: string }[]).map((r) => r.id));
      ids.forEach((id, i) => expect([id, written.has(id)]).toEqual([id, answers[i]!.status === 201]));
      expect(await tokenUses(tokenId)).toBe(byStatus['201']);
      // The next batch is fine again.
      expect((await enroll({ token, id: 'after-boom' })).status).toBe(201);
    } finally {
      await db.query(`DROP TRIGGER fail_boom ON devices`);
      await db.query(`DROP FUNCTION fail_boom()`);
    }
  });

  it('hands out tokens that pin the current TUF root, and refuses a pin it never published before creating anything', async () => {
    const { id: tokenId, token, rootSha256 } = await createToken({ name: 'pinned', maxUses: 10 });
    const current = ((await db.query(`SELECT json FROM tuf_metadata WHERE role = 'root' ORDER BY version DESC LIMIT 1`)) as { json: string }[])[0]!.json;
    expect(rootSha256).toBe(createHash('sha256').update(current).digest('hex'));
    expect(token).toBe(`${parseEnrollmentToken(token).secret}.${rootSha256.slice(0, 32)}`);

    // The token as handed out, its secret alone with the pin as rootSha256, and the bare secret (a token made before pins) all enroll.
    const pinned = await enroll({ token, id: 'pin-1' });
    expect(pinned.status).toBe(201);
    expect(pinned.body.tuf.root).toBe(current);
    expect((await enroll({ token: parseEnrollmentToken(token).secret, rootSha256, id: 'pin-2' })).status).toBe(201);
    expect((await enroll({ token: parseEnrollmentToken(token).secret, id: 'pin-3' })).status).toBe(201);

    const other = 'f'.repeat(64);
    for (const body of [
      { token: `${parseEnrollmentToken(token).secret}.${other.slice(0, 32)}`, id: 'pin-4' },
      { token, rootSha256: other, id: 'pin-5' },
    ]) {
      const refused = await enroll(body);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('enrollment-root-unknown');
      expect(refused.body.message).toContain('no TUF root whose sha256 starts with ffff');
    }
    expect(await tokenUses(tokenId)).toBe(3);
    expect(await devicesOf(tokenId)).toBe(3);
    expect(Number(((await db.query(`SELECT count(*)::int AS n FROM devices WHERE id IN ('pin-4', 'pin-5')`)) as { n: number }[])[0]!.n)).toBe(0);
  });

  it('refuses NUL characters before they can fail a batch', async () => {
    const { token } = await createToken({ name: 'nul', unlimited: true });
    expect((await enroll({ token, id: 'nul-1', name: 'a\u0000b' })).status).toBe(400);
  });
});
