import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { DeviceCredentials } from '@fleetline/protocol';
import { EmbeddedBrokerGateway } from '../../infra/mqtt/embedded-broker.gateway.js';
import { MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import {
  createTestCa,
  fingerprintOf,
  httpsRequest,
  issueClientCert,
  issueServerCert,
  requireOpenssl,
  type TestCa,
  type TestCert,
} from '../../testing/test-pki.js';

/**
 * Device client certificates on the embedded broker's TLS listeners (MQTT_TLS_CLIENT_CA_FILE),
 * over real TLS connections: every certificate is made here with openssl.
 */
describe('MQTT client certificates (mTLS)', () => {
  let dir: string;
  let serverCa: TestCa;
  let deviceCa: TestCa;
  let otherCa: TestCa;
  let t: TestApp;
  let url: string;
  const certs: Record<string, TestCert> = {};

  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const answer = await httpsRequest(`${t.baseUrl}${path}`, {
      ca: serverCa.pem,
      method,
      headers: { authorization: `Bearer ${t.adminKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: answer.status, body: (answer.body ? JSON.parse(answer.body) : undefined) as T };
  }

  /** 'connected', or mqtt.js' error (a refused CONNACK names its reason). */
  async function connect(clientId: string, options: { cert?: TestCert; password?: string }): Promise<string> {
    try {
      const client = await mqtt.connectAsync(url, {
        clientId,
        ...(options.password !== undefined ? { username: clientId, password: options.password } : {}),
        ...(options.cert ? { cert: options.cert.pem, key: readKey(options.cert) } : {}),
        ca: serverCa.pem,
        clean: true,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      await client.endAsync();
      return 'connected';
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  beforeAll(async () => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'fleetline-mtls-'));
    serverCa = createTestCa(dir, 'server-ca');
    deviceCa = createTestCa(dir, 'device-ca');
    otherCa = createTestCa(dir, 'other-ca');
    const server = issueServerCert(serverCa, dir, 'server');
    certs['a'] = issueClientCert(deviceCa, dir, 'dev-a', 'mtls-a');
    certs['b'] = issueClientCert(deviceCa, dir, 'dev-b', 'mtls-b');
    certs['foreignA'] = issueClientCert(otherCa, dir, 'foreign-a', 'mtls-a');
    certs['ghost'] = issueClientCert(deviceCa, dir, 'ghost', 'mtls-ghost');
    t = await startTestApp('pglite', {
      TLS_CERT_FILE: server.certFile,
      TLS_KEY_FILE: server.keyFile,
      MQTT_TLS_CLIENT_CA_FILE: deviceCa.certFile,
      TLS_WATCH_INTERVAL_MS: '0',
      MQTT_TLS_PORT: '0',
      MQTT_PLAIN: 'false',
      // This suite refuses on purpose, all from 127.0.0.1: the failure limit has its own tests.
      DEVICE_AUTH_FAILURES_PER_SECOND: '0',
    });
    url = `mqtts://127.0.0.1:${(t.app.get(MqttGateway) as EmbeddedBrokerGateway).tlsPort()}`;
    for (const id of ['mtls-a', 'mtls-b']) expect((await api<DeviceCredentials>('POST', '/api/v1/devices', { id })).status).toBe(201);
  });

  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers only a certificate of the client CA that names the device, for an enrolled device', async () => {
    const foreign = await api<{ code: string; message: string }>('PUT', '/api/v1/devices/mtls-a/client-certificate', { certificate: certs['foreignA']!.pem });
    expect(foreign.status).toBe(400);
    expect(foreign.body.message).toMatch(/not issued by the client CA/);
    const otherName = await api<{ message: string }>('PUT', '/api/v1/devices/mtls-a/client-certificate', { certificate: certs['b']!.pem });
    expect(otherName.status).toBe(400);
    expect(otherName.body.message).toMatch(/does not name mtls-a/);
    expect((await api('PUT', '/api/v1/devices/mtls-ghost/client-certificate', { certificate: certs['ghost']!.pem })).status).toBe(404);
    const ok = await api<{ sha256: string }>('PUT', '/api/v1/devices/mtls-a/client-certificate', { certificate: certs['a']!.pem });
    expect(ok.status).toBe(200);
    expect(ok.body.sha256).toBe(fingerprintOf(certs['a']!.pem).replace(/:/g, '').toLowerCase());
  });

  it('lets a device in with its registered certificate and no secret', async () => {
    expect(await connect('mtls-a', { cert: certs['a']! })).toBe('connected');
  });

  it('refuses a certificate of another CA, one naming another device, and a CA-signed one never registered', async () => {
    const metrics = (t.app.get(MqttGateway) as EmbeddedBrokerGateway).metrics;
    const refused = async (clientId: string, cert: TestCert): Promise<string | undefined> => {
      expect(await connect(clientId, { cert })).toMatch(/Bad username or password/i);
      return metrics.lastDenial?.reason;
    };
    expect(await refused('mtls-a', certs['foreignA']!)).toMatch(/^client certificate not trusted/);
    expect(await refused('mtls-a', certs['b']!)).toBe('client certificate does not name the client id');
    // Signed by the client CA and naming its client id, but neither enrolled nor registered.
    expect(await refused('mtls-ghost', certs['ghost']!)).toBe('bad credentials');
    // Enrolled, certificate valid and naming it, but not the one registered for it.
    expect(await refused('mtls-b', certs['b']!)).toBe('bad credentials');
  });

  it('keeps secrets working for devices without a certificate', async () => {
    const created = await api<DeviceCredentials>('POST', '/api/v1/devices', { id: 'mtls-c' });
    expect(await connect('mtls-c', { password: created.body.secret })).toBe('connected');
    expect(await connect('mtls-c', { password: 'wrong-secret-wrong-secret-wrong-secret' })).toMatch(/Bad username or password/i);
  });

  it('refuses the certificate of a decommissioned device, and a re-enrolled id starts without one', async () => {
    expect((await api('DELETE', '/api/v1/devices/mtls-a')).status).toBe(204);
    expect(await connect('mtls-a', { cert: certs['a']! })).toMatch(/Bad username or password/i);
    expect((t.app.get(MqttGateway) as EmbeddedBrokerGateway).metrics.lastDenial?.reason).toBe('bad credentials');
    expect((await api('PUT', '/api/v1/devices/mtls-a/client-certificate', { certificate: certs['a']!.pem })).status).toBe(404);
    expect((await api<DeviceCredentials>('POST', '/api/v1/devices', { id: 'mtls-a' })).status).toBe(201);
    expect(await connect('mtls-a', { cert: certs['a']! })).toMatch(/Bad username or password/i);
  });
});

function readKey(cert: TestCert): string {
  return readFileSync(cert.keyFile, 'utf8');
}
