import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { type DeviceCredentials, topics } from '@fleetline/protocol';
import { hashSecret } from '../access/secret.js';
import { loadConfig } from '../infra/config/config.schema.js';
import { apiClient, type ApiClient, databaseBackends, startTestApp, type TestApp } from '../testing/test-app.fixture.js';
import { BROKER_AUTH_PATHS } from './broker-auth.controller.js';
import { BrokerAuthMetrics } from './broker-auth.metrics.js';

/**
 * Contract tests: the exact requests EMQX 5 (HTTP authenticator and authorizer) and
 * mosquitto-go-auth (HTTP backend, JSON and form params, status/json/text responses) send, against
 * the real control plane in external-broker mode. The control plane joins the real Mosquitto on
 * this machine (MQTT_TEST_URL) as its broker user; no go-auth plugin is installed here, so these
 * requests are what proves the broker side.
 */
const brokerUrl = process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';
const BROKER_SECRET = `bas_${randomBytes(24).toString('base64url')}`;
const CP_USER = 'fleetline-cp';
const CP_PASSWORD = randomBytes(24).toString('base64url');

interface Reply {
  status: number;
  body: unknown;
  contentType: string | null;
}

async function send(baseUrl: string, path: string, init: { body: string; contentType: string; authorization?: string }): Promise<Reply> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': init.contentType, ...(init.authorization !== undefined ? { authorization: init.authorization } : {}) },
    body: init.body,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // text mode answers are plain text
  }
  return { status: response.status, body, contentType: response.headers.get('content-type') };
}

/** EMQX 5: JSON body rendered from the configured template, secret in a configured header. */
function emqx(t: TestApp, path: string, body: Record<string, string>, authorization = `Bearer ${BROKER_SECRET}`): Promise<Reply> {
  return send(t.baseUrl, path, { body: JSON.stringify(body), contentType: 'application/json', authorization });
}

/**
 * mosquitto-go-auth: `http_params_mode json` sends a JSON object (acc a number), `form` a form
 * post (every value a string); Go's HTTP client turns the credentials of `http_host user:secret@host`
 * into HTTP Basic.
 */
const goAuthBasic = `Basic ${Buffer.from(`mosquitto:${BROKER_SECRET}`).toString('base64')}`;
function goAuth(t: TestApp, mode: 'json' | 'form', path: string, body: Record<string, string | number>, query = ''): Promise<Reply> {
  const init =
    mode === 'json'
      ? { body: JSON.stringify(body), contentType: 'application/json' }
      : {
          body: new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString(),
          contentType: 'application/x-www-form-urlencoded',
        };
  return send(t.baseUrl, `${path}${query}`, { ...init, authorization: goAuthBasic });
}

const ALLOW = { result: 'allow', is_superuser: false };
const DENY = { result: 'deny', is_superuser: false };

describe.each(databaseBackends())('broker auth endpoints on %s', (backend) => {
  let t: TestApp;
  let api: ApiClient;
  let metrics: BrokerAuthMetrics;
  const creds = new Map<string, DeviceCredentials>();

  async function device(id: string): Promise<DeviceCredentials> {
    const res = await api.post<DeviceCredentials>('/api/v1/devices', { id });
    expect(res.status).toBe(201);
    creds.set(id, res.body);
    return res.body;
  }

  /** The authz request EMQX sends with the documented template (every placeholder a string). */
  const authz = (username: string, topic: string, action: string, retain = 'false', clientid = username) =>
    emqx(t, BROKER_AUTH_PATHS.emqxAuthz, { clientid, username, topic, action, qos: '1', retain });
  const authzResult = async (...args: Parameters<typeof authz>): Promise<unknown> => (await authz(...args)).body;

  beforeAll(async () => {
    t = await startTestApp(backend, {
      MQTT_URL: brokerUrl,
      MQTT_USERNAME: CP_USER,
      MQTT_PASSWORD: CP_PASSWORD,
      MQTT_SHARED_GROUP: `cp${randomBytes(4).toString('hex')}`,
      BROKER_AUTH_SECRET: BROKER_SECRET,
    });
    api = apiClient(t.baseUrl, t.adminKey);
    metrics = t.app.get(BrokerAuthMetrics);
    for (const id of ['ba-1', 'ba-2', 'ba-dec']) await device(id);
    expect((await api.delete('/api/v1/devices/ba-dec')).status).toBe(204);
  });
  afterAll(async () => {
    await t.close();
  });

  describe('broker secret', () => {
    it.each(Object.values(BROKER_AUTH_PATHS))('refuses %s without the broker secret (401), with or without a body', async (path) => {
      const body = JSON.stringify({ username: 'ba-1', clientid: 'ba-1', password: creds.get('ba-1')!.secret });
      const before = metrics.count('request', 'deny', 'broker-secret' as never);
      for (const authorization of [
        undefined,
        'Bearer wrong-secret-wrong-secret',
        `Bearer ${BROKER_SECRET}x`,
        `Basic ${Buffer.from(`${BROKER_SECRET}:x`).toString('base64')}`,
      ]) {
        const reply = await send(t.baseUrl, path, { body, contentType: 'application/json', authorization });
        expect([authorization, reply.status, reply.body]).toEqual([authorization, 401, expect.objectContaining({ code: 'broker-auth-unauthenticated' })]);
      }
      expect(metrics.count('request', 'deny', 'broker-secret' as never)).toBe(before + 4);
    });

    it('leaves every other method and path to the app', async () => {
      expect((await fetch(`${t.baseUrl}${BROKER_AUTH_PATHS.emqxAuthn}`)).status).toBe(404);
      expect(
        (await send(t.baseUrl, '/api/v1/broker-auth/emqx', { body: '{}', contentType: 'application/json', authorization: `Bearer ${BROKER_SECRET}` })).status,
      ).toBe(404);
    });

    it('does not take an admin API key instead', async () => {
      const reply = await emqx(
        t,
        BROKER_AUTH_PATHS.emqxAuthn,
        { clientid: 'ba-1', username: 'ba-1', password: creds.get('ba-1')!.secret },
        `Bearer ${t.adminKey}`,
      );
      expect(reply.status).toBe(401);
    });

    it('writes no audit row per check', async () => {
      await emqx(t, BROKER_AUTH_PATHS.emqxAuthn, { clientid: 'ba-1', username: 'ba-1', password: creds.get('ba-1')!.secret });
      const rows = (await t.app.get(DataSource).query(`SELECT count(*)::int AS n FROM audit_log WHERE action LIKE '%broker-auth%'`)) as { n: number }[];
      expect(rows[0]!.n).toBe(0);
    });
  });

  describe('EMQX 5 HTTP authenticator', () => {
    const authn = (body: Record<string, string>) => emqx(t, BROKER_AUTH_PATHS.emqxAuthn, body);

    it('allows a device with its own secret: 200, application/json, result allow, not superuser', async () => {
      const reply = await authn({ clientid: 'ba-1', username: 'ba-1', password: creds.get('ba-1')!.secret });
      expect(reply).toEqual({ status: 200, body: ALLOW, contentType: expect.stringContaining('application/json') });
    });

    it('denies (never "ignore") wrong, missing and foreign secrets, unknown and decommissioned devices, and id mismatches', async () => {
      const s1 = creds.get('ba-1')!.secret;
      const cases: Record<string, string>[] = [
        { clientid: 'ba-1', username: 'ba-1', password: 'wrong' },
        { clientid: 'ba-1', username: 'ba-1', password: '' },
        { clientid: 'ba-1', username: 'ba-1' },
        { clientid: 'nobody', username: 'nobody', password: s1 },
        { clientid: 'ba-2', username: 'ba-2', password: s1 },
        { clientid: 'ba-1', username: 'ba-2', password: s1 },
        { clientid: 'ba-2', username: 'ba-1', password: s1 },
        { clientid: 'ba-dec', username: 'ba-dec', password: creds.get('ba-dec')!.secret },
        { clientid: 'a/b', username: 'a/b', password: s1 },
        { clientid: '', username: '', password: '' },
      ];
      for (const body of cases) expect([body, (await authn(body)).body]).toEqual([body, DENY]);
      // Bodies that are not the template: not an object, broken JSON, another content type.
      for (const [body, contentType] of [
        ['[1,2]', 'application/json'],
        ['{"clientid":', 'application/json'],
        ['clientid=ba-1', 'text/plain'],
      ]) {
        expect(await send(t.baseUrl, BROKER_AUTH_PATHS.emqxAuthn, { body, contentType, authorization: `Bearer ${BROKER_SECRET}` })).toMatchObject({
          status: 200,
          body: DENY,
        });
      }
      const huge = await send(t.baseUrl, BROKER_AUTH_PATHS.emqxAuthn, {
        body: JSON.stringify({ clientid: 'ba-1', username: 'ba-1', password: 'x'.repeat(64 * 1024) }),
        contentType: 'application/json',
        authorization: `Bearer ${BROKER_SECRET}`,
      });
      expect(huge).toMatchObject({ status: 400, body: { code: 'invalid-input' } });
    });

    it('admits the control-plane user as superuser with its own password only', async () => {
      expect((await authn({ clientid: 'fleetline-cp-0a1b2c3d4e5f', username: CP_USER, password: CP_PASSWORD })).body).toEqual({
        result: 'allow',
        is_superuser: true,
      });
      expect((await authn({ clientid: 'fleetline-cp-0a1b2c3d4e5f', username: CP_USER, password: 'fleetline-cp-change-me' })).body).toEqual(DENY);
      expect((await authn({ clientid: CP_USER, username: CP_USER, password: '' })).body).toEqual(DENY);
    });

    it('never lets a device claim the control plane: a device named like it, or like its client ids, is refused', async () => {
      const named = await api.post<DeviceCredentials>('/api/v1/devices', { id: CP_USER });
      if (named.status === 201) expect((await authn({ clientid: CP_USER, username: CP_USER, password: named.body.secret })).body).toEqual(DENY);
      // Such ids are refused at registration now (reserved-device-id) ...
      const refused = await api.post<{ code: string }>('/api/v1/devices', { id: 'fleetline-cp-deadbeef0001' });
      expect([refused.status, refused.body.code]).toEqual([400, 'reserved-device-id']);
      // ... and a row from before that (written straight to the table) is still refused by the broker check.
      const secret = 'fld_lookalike-secret-0000000000000000';
      await t.app.get(DataSource).query(`INSERT INTO devices (id, credential_hash) VALUES ($1, $2)`, ['fleetline-cp-deadbeef0001', hashSecret(secret)]);
      expect((await authn({ clientid: 'fleetline-cp-deadbeef0001', username: 'fleetline-cp-deadbeef0001', password: secret })).body).toEqual(DENY);
    });

    it('shares the embedded broker credential cache: a decommission refuses a cached device at once', async () => {
      const c = await device('ba-cache');
      const body = { clientid: 'ba-cache', username: 'ba-cache', password: c.secret };
      expect((await authn(body)).body).toEqual(ALLOW);
      // The row's hash changes underneath: the cached credential still answers (no query per check) ...
      await t.app.get(DataSource).query(`UPDATE devices SET credential_hash = repeat('0', 64) WHERE id = 'ba-cache'`);
      expect((await authn(body)).body).toEqual(ALLOW);
      // ... until the decommission evicts it from the one verifier every path uses.
      expect((await api.delete('/api/v1/devices/ba-cache')).status).toBe(204);
      expect((await authn(body)).body).toEqual(DENY);
    });
  });

  describe('EMQX 5 HTTP authorizer', () => {
    const own = (kind: string) => `fleet/v1/devices/ba-1/${kind}`;

    it('allows a device its own publish and subscribe topics', async () => {
      for (const kind of ['reported', 'inventory', 'presence', 'telemetry'])
        expect([kind, await authzResult('ba-1', own(kind), 'publish')]).toEqual([kind, { result: 'allow' }]);
      for (const filter of [topics.desiredAll('ba-1'), topics.desired('ba-1', 'resnet'), topics.commands('ba-1')]) {
        expect([filter, await authzResult('ba-1', filter, 'subscribe', '')]).toEqual([filter, { result: 'allow' }]);
      }
    });

    it.each([
      ['another device', 'fleet/v1/devices/ba-2/reported', 'publish', 'false'],
      ['last will on another device', 'fleet/v1/devices/ba-2/presence', 'publish', 'false'],
      ['desired is server-only', 'fleet/v1/devices/ba-1/desired/resnet', 'publish', 'false'],
      ['commands are server-only', 'fleet/v1/devices/ba-1/commands', 'publish', 'false'],
      ['retained report', 'fleet/v1/devices/ba-1/reported', 'publish', 'true'],
      ['retained telemetry', 'fleet/v1/devices/ba-1/telemetry', 'publish', 'true'],
      ['retained presence', 'fleet/v1/devices/ba-1/presence', 'publish', 'true'],
      ['retained inventory', 'fleet/v1/devices/ba-1/inventory', 'publish', 'true'],
      ['$SYS publish', '$SYS/broker/x', 'publish', 'false'],
      ['wildcard publish', 'fleet/v1/devices/+/reported', 'publish', 'false'],
      ['extra level', 'fleet/v1/devices/ba-1/reported/extra', 'publish', 'false'],
      ['everything', '#', 'subscribe', 'false'],
      ['$SYS', '$SYS/#', 'subscribe', 'false'],
      ['$share', '$share/g/fleet/v1/devices/ba-1/commands', 'subscribe', 'false'],
      ["another device's desired", topics.desiredAll('ba-2'), 'subscribe', 'false'],
      ["another device's commands", topics.commands('ba-2'), 'subscribe', 'false'],
      ['own subtree', 'fleet/v1/devices/ba-1/#', 'subscribe', 'false'],
      ['own +', 'fleet/v1/devices/ba-1/+', 'subscribe', 'false'],
      ['own reported', 'fleet/v1/devices/ba-1/reported', 'subscribe', 'false'],
      ['every device', 'fleet/v1/devices/+/desired/+', 'subscribe', 'false'],
    ])('denies %s (%s, %s)', async (_what, topic, action, retain) => {
      expect(await authzResult('ba-1', topic, action, retain)).toEqual({ result: 'deny' });
    });

    it('denies unknown and decommissioned devices, id mismatches, a publish without the retain flag and unknown actions', async () => {
      expect(await authzResult('nobody', 'fleet/v1/devices/nobody/reported', 'publish')).toEqual({ result: 'deny' });
      expect(await authzResult('ba-dec', 'fleet/v1/devices/ba-dec/reported', 'publish')).toEqual({ result: 'deny' });
      expect(await authzResult('ba-1', own('reported'), 'publish', 'false', 'ba-2')).toEqual({ result: 'deny' });
      const noRetain = await emqx(t, BROKER_AUTH_PATHS.emqxAuthz, { clientid: 'ba-1', username: 'ba-1', topic: own('reported'), action: 'publish' });
      expect(noRetain).toMatchObject({ status: 200, body: { result: 'deny' } });
      expect(await authzResult('ba-1', own('reported'), 'all')).toEqual({ result: 'deny' });
    });

    it('lets the control-plane user use shared subscriptions and publish desired state', async () => {
      expect(await authzResult(CP_USER, '$share/fleetline/fleet/v1/devices/+/reported', 'subscribe', 'false', 'fleetline-cp-0a1b2c3d4e5f')).toEqual({
        result: 'allow',
      });
      expect(await authzResult(CP_USER, topics.desired('ba-1', 'resnet'), 'publish', 'false', 'fleetline-cp-0a1b2c3d4e5f')).toEqual({ result: 'allow' });
    });
  });

  describe.each(['json', 'form'] as const)('mosquitto-go-auth HTTP backend, http_params_mode %s', (mode) => {
    const user = (body: Record<string, string>, query = '') => goAuth(t, mode, BROKER_AUTH_PATHS.goAuthUser, body, query);
    const acl = (username: string, topic: string, acc: number, clientid = username) =>
      goAuth(t, mode, BROKER_AUTH_PATHS.goAuthAcl, { username, clientid, topic, acc });
    const OK = { ok: true, error: '' };

    it('/user: 200 {"ok":true} for a device with its own secret, 403 {"ok":false} for every bad login', async () => {
      const s1 = creds.get('ba-1')!.secret;
      expect(await user({ username: 'ba-1', password: s1, clientid: 'ba-1' })).toMatchObject({ status: 200, body: OK });
      const bad = [
        { username: 'ba-1', password: 'wrong', clientid: 'ba-1' },
        { username: 'ba-1', password: '', clientid: 'ba-1' },
        { username: 'nobody', password: s1, clientid: 'nobody' },
        { username: 'ba-2', password: s1, clientid: 'ba-2' },
        { username: 'ba-1', password: s1, clientid: 'ba-2' },
        { username: 'ba-dec', password: creds.get('ba-dec')!.secret, clientid: 'ba-dec' },
        { username: CP_USER, password: 'fleetline-cp-change-me', clientid: 'fleetline-cp-1' },
      ];
      for (const body of bad)
        expect([body, await user(body)]).toEqual([body, expect.objectContaining({ status: 403, body: expect.objectContaining({ ok: false }) })]);
      // Missing fields (an older go-auth without clientid, a hand-written request): refused too.
      expect((await user({ username: 'ba-1', password: s1 })).status).toBe(403);
    });

    it('/user: the control-plane user with its own password, and text response mode', async () => {
      expect(await user({ username: CP_USER, password: CP_PASSWORD, clientid: 'fleetline-cp-0a1b2c3d4e5f' })).toMatchObject({ status: 200, body: OK });
      expect(await user({ username: 'ba-1', password: creds.get('ba-1')!.secret, clientid: 'ba-1' }, '?response=text')).toMatchObject({
        status: 200,
        body: 'ok',
      });
      expect(await user({ username: 'ba-1', password: 'wrong', clientid: 'ba-1' }, '?response=text')).toMatchObject({ status: 403, body: 'bad-credentials' });
    });

    it('/superuser: only the control-plane user', async () => {
      expect(await goAuth(t, mode, BROKER_AUTH_PATHS.goAuthSuperuser, { username: CP_USER })).toMatchObject({ status: 200, body: OK });
      expect((await goAuth(t, mode, BROKER_AUTH_PATHS.goAuthSuperuser, { username: 'ba-1' })).status).toBe(403);
    });

    it('/acl: a device writes (2) its own uplink topics, subscribes (4) to and reads (1) its own downlink topics', async () => {
      for (const kind of ['reported', 'inventory', 'presence', 'telemetry'])
        expect([kind, (await acl('ba-1', `fleet/v1/devices/ba-1/${kind}`, 2)).status]).toEqual([kind, 200]);
      for (const filter of [topics.desiredAll('ba-1'), topics.commands('ba-1')]) expect([filter, (await acl('ba-1', filter, 4)).status]).toEqual([filter, 200]);
      for (const topic of [topics.desired('ba-1', 'resnet'), topics.commands('ba-1')])
        expect([topic, (await acl('ba-1', topic, 1)).status]).toEqual([topic, 200]);
      expect((await acl('ba-1', topics.desiredAll('ba-1'), 8)).status).toBe(200);
    });

    it.each([
      ['another device', 'fleet/v1/devices/ba-2/reported', 2],
      ['desired is server-only', 'fleet/v1/devices/ba-1/desired/resnet', 2],
      ['commands are server-only', 'fleet/v1/devices/ba-1/commands', 2],
      ['$SYS write', '$SYS/broker/x', 2],
      ['everything', '#', 4],
      ['$SYS', '$SYS/#', 4],
      ['$share', '$share/g/fleet/v1/devices/ba-1/commands', 4],
      ["another device's desired", topics.desiredAll('ba-2'), 4],
      ['own subtree', 'fleet/v1/devices/ba-1/#', 4],
      ['own reported', 'fleet/v1/devices/ba-1/reported', 4],
      ["reading another device's commands", topics.commands('ba-2'), 1],
      ['reading its own uplink', 'fleet/v1/devices/ba-1/reported', 1],
      ['readwrite', 'fleet/v1/devices/ba-1/reported', 3],
      ['unknown access', 'fleet/v1/devices/ba-1/reported', 16],
    ])('/acl: denies %s (%s, acc %s) with 403', async (_what, topic, acc) => {
      expect(await acl('ba-1', topic, acc)).toMatchObject({ status: 403, body: { ok: false } });
    });

    it('/acl: denies unknown and decommissioned devices and id mismatches; allows the control plane', async () => {
      expect((await acl('nobody', 'fleet/v1/devices/nobody/reported', 2)).status).toBe(403);
      expect((await acl('ba-dec', 'fleet/v1/devices/ba-dec/reported', 2)).status).toBe(403);
      expect((await acl('ba-1', 'fleet/v1/devices/ba-1/reported', 2, 'ba-2')).status).toBe(403);
      expect((await acl(CP_USER, '$share/fleetline/fleet/v1/devices/+/reported', 4, 'fleetline-cp-0a1b2c3d4e5f')).status).toBe(200);
    });
  });

  it('counts every answer in /metrics with bounded labels', async () => {
    await emqx(t, BROKER_AUTH_PATHS.emqxAuthn, { clientid: 'ba-1', username: 'ba-1', password: 'wrong' });
    await authz('ba-1', 'fleet/v1/devices/ba-2/reported', 'publish');
    const text = String((await api.get('/metrics')).body);
    const value = (labels: string): number => Number(new RegExp(`^fleetline_broker_auth_total\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('kind="connect",result="deny",reason="bad-credentials"')).toBeGreaterThanOrEqual(1);
    expect(value('kind="connect",result="allow",reason="none"')).toBeGreaterThanOrEqual(1);
    expect(value('kind="publish",result="deny",reason="foreign-topic"')).toBeGreaterThanOrEqual(1);
    expect(value('kind="request",result="deny",reason="broker-secret"')).toBeGreaterThanOrEqual(1);
    expect(metrics.count('publish', 'deny', 'foreign-topic' as never)).toBe(value('kind="publish",result="deny",reason="foreign-topic"'));
    // Timed by the HTTP middleware under their route pattern, like every other route.
    expect(text).toMatch(/^fleetline_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/broker-auth\/emqx\/authz",status="200"\} \d+$/m);
    // No device id or topic ever becomes a label.
    for (const line of text.split('\n').filter((l) => l.startsWith('fleetline_broker_auth_total{'))) expect(line).not.toMatch(/ba-|fleet\/v1/);
  });
});

describe('broker auth endpoints without BROKER_AUTH_SECRET', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp('pglite');
  });
  afterAll(async () => {
    await t.close();
  });

  it('are off (404) in embedded mode without a secret, whatever is presented', async () => {
    const reply = await emqx(t, BROKER_AUTH_PATHS.emqxAuthn, { clientid: 'x', username: 'x', password: 'y' });
    expect(reply).toMatchObject({ status: 404, body: { code: 'broker-auth-disabled' } });
  });

  it('refuse a short or URL-unsafe secret at start-up', () => {
    expect(() => loadConfig({ BROKER_AUTH_SECRET: 'short' })).toThrow(/BROKER_AUTH_SECRET/);
    expect(() => loadConfig({ BROKER_AUTH_SECRET: 'a'.repeat(30) + '@:/' })).toThrow(/URL-safe/);
  });
});
