import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import type { DeviceCredentials } from '@fleetline/protocol';
import { ConfigError, loadConfig } from '../config/config.schema.js';
import { EmbeddedBrokerGateway } from '../mqtt/embedded-broker.gateway.js';
import { MqttGateway } from '../mqtt/mqtt-gateway.js';
import { eventually, startTestApp, type TestApp } from '../../testing/test-app.fixture.js';
import {
  createTestCa,
  fingerprintOf,
  httpsRequest,
  issueServerCert,
  peerFingerprint,
  requireOpenssl,
  type TestCa,
  type TestCert,
} from '../../testing/test-pki.js';
import { TransportSecurity } from './transport-security.js';

/** Puts `cert` where the server reads its files (key first: a watcher between the two sees a mismatch and keeps the old pair). */
function install(cert: TestCert, at: { certFile: string; keyFile: string }): void {
  copyFileSync(cert.keyFile, at.keyFile);
  copyFileSync(cert.certFile, at.certFile);
}

function connectMqtt(url: string, creds: DeviceCredentials, ca?: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    clientId: creds.mqtt.clientId,
    username: creds.mqtt.username,
    password: creds.secret,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...(ca !== undefined ? { ca } : {}),
  });
}

/** mqtt.js reports a refused handshake as an error on the first connection attempt. */
async function mqttRefused(url: string, creds: DeviceCredentials, ca?: string): Promise<string> {
  try {
    const client = await connectMqtt(url, creds, ca);
    await client.endAsync();
    return 'connected';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

// TLS does not touch the database: PGlite only.
describe('TLS listeners (HTTPS, MQTT over TLS, secure WebSocket)', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let served: { certFile: string; keyFile: string; caFile: string };
  let first: TestCert;
  let t: TestApp;
  let gateway: EmbeddedBrokerGateway;
  let creds: DeviceCredentials;

  beforeAll(async () => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'fleetline-tls-'));
    ca = createTestCa(dir, 'fleet-ca');
    otherCa = createTestCa(dir, 'other-ca');
    first = issueServerCert(ca, dir, 'server-1');
    served = { certFile: join(dir, 'served.pem'), keyFile: join(dir, 'served.key'), caFile: ca.certFile };
    install(first, served);
    t = await startTestApp('pglite', {
      TLS_CERT_FILE: served.certFile,
      TLS_KEY_FILE: served.keyFile,
      TLS_CA_FILE: served.caFile,
      TLS_WATCH_INTERVAL_MS: '0', // reloads in this suite are explicit (SIGHUP, reload()); the watcher has its own test
      MQTT_TLS_PORT: '0',
      MQTT_WSS_PORT: '0',
      MQTT_PLAIN: 'false',
      MQTT_MAX_PACKET_BYTES: '4096',
    });
    gateway = t.app.get(MqttGateway) as EmbeddedBrokerGateway;
  });

  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS to a client that trusts the CA, and to no other', async () => {
    expect(t.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = await httpsRequest(`${t.baseUrl}/healthz`, { ca: ca.pem });
    expect(ok.status).toBe(200);
    expect(ok.fingerprint256).toBe(fingerprintOf(first.pem));
    await expect(httpsRequest(`${t.baseUrl}/healthz`)).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    await expect(httpsRequest(`${t.baseUrl}/healthz`, { ca: otherCa.pem })).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    await expect(fetch(`http://127.0.0.1:${new URL(t.baseUrl).port}/healthz`)).rejects.toThrow();
  });

  it('enrolls over HTTPS and hands out mqtts:// and https:// addresses with the CA', async () => {
    const token = await httpsRequest(`${t.baseUrl}/api/v1/enrollment-tokens`, {
      ca: ca.pem,
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tls' }),
    });
    expect(token.status).toBe(201);
    const enrolled = await httpsRequest(`${t.baseUrl}/api/v1/enroll`, {
      ca: ca.pem,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: (JSON.parse(token.body) as { token: string }).token, id: 'tls-dev-1' }),
    });
    expect(enrolled.status).toBe(201);
    creds = JSON.parse(enrolled.body) as DeviceCredentials;
    expect(creds.mqtt.urls).toEqual([`mqtts://127.0.0.1:${gateway.tlsPort()}`]);
    expect(creds.http.baseUrl).toBe(t.baseUrl);
    expect(creds.tuf.metadataUrl).toMatch(/^https:\/\//);
    expect(creds.tls?.ca).toBe(ca.pem);
  });

  it('lets a device in over mqtts:// with the CA, and refuses the handshake without it or with another CA', async () => {
    expect(gateway.port()).toBe(0); // MQTT_PLAIN=false: no plain listener at all
    const client = await connectMqtt(creds.mqtt.url, creds, creds.tls!.ca);
    expect(client.connected).toBe(true);
    await client.endAsync();
    expect(await mqttRefused(creds.mqtt.url, creds)).toMatch(/self[- ]signed|unable to (get|verify)/i);
    expect(await mqttRefused(creds.mqtt.url, creds, otherCa.pem)).toMatch(/self[- ]signed|unable to (get|verify)/i);
    const handshakes = gateway.metrics.count('tls');
    expect(handshakes).toBeGreaterThanOrEqual(1);
  });

  it('lets a device in over secure WebSocket with the CA', async () => {
    const client = await connectMqtt(`wss://127.0.0.1:${gateway.wssPort()}`, creds, ca.pem);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('closes a TLS connection that announces a packet over MQTT_MAX_PACKET_BYTES', async () => {
    const before = gateway.metrics.count('packet-size');
    const socket = tlsConnect({ host: '127.0.0.1', port: gateway.tlsPort(), ca: ca.pem });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // CONNECT fixed header announcing 100,000 bytes (Remaining Length 0xA0 0x8D 0x06), over the 4096 limit.
    socket.write(Buffer.from([0x10, 0xa0, 0x8d, 0x06, 0x00]));
    await closed;
    expect(gateway.metrics.count('packet-size')).toBe(before + 1);
  });

  it('serves a replaced certificate to new connections after SIGHUP, and keeps open ones', async () => {
    const open = await connectMqtt(creds.mqtt.url, creds, ca.pem);
    let dropped = false;
    open.on('close', () => (dropped = true));
    const second = issueServerCert(ca, dir, 'server-2');
    install(second, served);
    expect(await peerFingerprint(gateway.tlsPort(), ca.pem)).toBe(fingerprintOf(first.pem)); // not before the signal
    // The handler itself: a real signal to the jest process would end it (jest's sandboxed process
    // object does not carry the app's signal handlers); test/e2e/agent-tls sends a real one.
    process.emit('SIGHUP', 'SIGHUP');
    await eventually(
      async () => ((await peerFingerprint(gateway.tlsPort(), ca.pem)) === fingerprintOf(second.pem) ? true : undefined),
      5000,
      'new MQTT certificate',
    );
    expect((await httpsRequest(`${t.baseUrl}/healthz`, { ca: ca.pem })).fingerprint256).toBe(fingerprintOf(second.pem));
    expect(await peerFingerprint(gateway.wssPort(), ca.pem)).toBe(fingerprintOf(second.pem));
    expect(dropped).toBe(false);
    expect(open.connected).toBe(true);
    await open.endAsync();
  });

  it('keeps serving the current certificate when a reload reads a key that does not match', async () => {
    const serving = await peerFingerprint(gateway.tlsPort(), ca.pem);
    const security = t.app.get(TransportSecurity);
    const stray = issueServerCert(ca, dir, 'server-stray');
    copyFileSync(stray.keyFile, served.keyFile); // key of another certificate
    expect(security.reload('test')).toBe(false);
    expect(await peerFingerprint(gateway.tlsPort(), ca.pem)).toBe(serving);
    const third = issueServerCert(ca, dir, 'server-3');
    install(third, served);
    expect(security.reload('test')).toBe(true);
    expect(await peerFingerprint(gateway.tlsPort(), ca.pem)).toBe(fingerprintOf(third.pem));
  });
});

describe('TransportSecurity file watch', () => {
  it('reloads by itself when the files are replaced', async () => {
    requireOpenssl();
    const dir = mkdtempSync(join(tmpdir(), 'fleetline-tls-watch-'));
    try {
      const ca = createTestCa(dir, 'watch-ca');
      const a = issueServerCert(ca, dir, 'a');
      const b = issueServerCert(ca, dir, 'b');
      const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
      install(a, files);
      const security = new TransportSecurity({ ...files, watchIntervalMs: 50 });
      const seen: string[] = [];
      security.onChange((options) => seen.push(fingerprintOf(String(options.cert))));
      security.start();
      try {
        // A replacement by rename, as certbot and cert-manager do it.
        copyFileSync(b.keyFile, `${files.keyFile}.new`);
        copyFileSync(b.certFile, `${files.certFile}.new`);
        renameSync(`${files.keyFile}.new`, files.keyFile);
        renameSync(`${files.certFile}.new`, files.certFile);
        await eventually(() => (security.current().fingerprint256 === fingerprintOf(b.pem) ? true : undefined), 5000, 'watched reload');
        expect(seen.at(-1)).toBe(fingerprintOf(b.pem));
      } finally {
        security.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS settings at start-up', () => {
  let dir: string;
  let ca: TestCa;
  let cert: TestCert;
  let other: TestCert;

  beforeAll(() => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'fleetline-tls-config-'));
    ca = createTestCa(dir, 'cfg-ca');
    cert = issueServerCert(ca, dir, 'cfg-a');
    other = issueServerCert(ca, dir, 'cfg-b');
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const problem = (env: Record<string, string>): string => {
    try {
      loadConfig({ DATA_DIR: dir, ...env });
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
    return 'accepted';
  };

  it('accepts a matching pair and a CA bundle', () => {
    const config = loadConfig({ DATA_DIR: dir, TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, TLS_CA_FILE: ca.certFile });
    expect(config.tls).toMatchObject({ certFile: cert.certFile, keyFile: cert.keyFile, caFile: ca.certFile, watchIntervalMs: 10_000 });
    expect(config.mqtt).toMatchObject({ kind: 'embedded', tlsPort: 8883, plain: true });
  });

  it('fails on a missing, unreadable, garbled or mismatched file, naming the setting', () => {
    expect(problem({ TLS_CERT_FILE: join(dir, 'missing.pem'), TLS_KEY_FILE: cert.keyFile })).toMatch(/TLS_CERT_FILE: cannot read .*missing\.pem/);
    expect(problem({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: join(dir, 'missing.key') })).toMatch(/TLS_KEY_FILE: cannot read/);
    expect(problem({ TLS_CERT_FILE: join(dir, 'garbage.pem'), TLS_KEY_FILE: cert.keyFile })).toMatch(/TLS_CERT_FILE: .* holds no PEM certificate/);
    expect(problem({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: join(dir, 'garbage.pem') })).toMatch(/TLS_KEY_FILE: .* not a PEM private key/);
    expect(problem({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: other.keyFile })).toMatch(/TLS_KEY_FILE: .* does not match the certificate/);
    expect(problem({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, TLS_CA_FILE: join(dir, 'garbage.pem') })).toMatch(
      /TLS_CA_FILE: .* holds no PEM/,
    );
    expect(problem({ TLS_CERT_FILE: cert.certFile })).toMatch(/TLS_KEY_FILE: TLS needs both/);
  });
});
