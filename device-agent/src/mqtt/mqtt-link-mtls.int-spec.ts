import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import { createTestCa, issueClientCert, issueServerCert, requireOpenssl, type TestCa } from '../../../apps/control-plane/src/testing/test-pki.js';
import { ConfigError, readClientCertificate } from '../config/config.js';
import { Backoff } from '../util/backoff.js';
import { MqttLink } from './mqtt-link.js';

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The agent's side of mTLS: the link presents mqttClientCertFile/mqttClientKeyFile to a broker
 * that asks for a client certificate (the control plane's own check is in its client-certificate
 * int-spec). The broker here admits a client only on a certificate of the device CA naming it.
 */
describe('agent mTLS: the MQTT link presents its client certificate', () => {
  let dir: string;
  let serverCa: TestCa;
  let deviceCa: TestCa;
  let broker: Aedes;
  let tlsServer: TlsServer;
  let url: string;
  const links: MqttLink[] = [];

  beforeAll(async () => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'agent-mtls-'));
    serverCa = createTestCa(dir, 'mtls-server-ca');
    deviceCa = createTestCa(dir, 'mtls-device-ca');
    const server = issueServerCert(serverCa, dir, 'mtls-server');
    broker = await Aedes.createBroker({
      authenticate: (client, _username, _password, done) => {
        const socket = (client as unknown as { conn: unknown }).conn;
        const ok = socket instanceof TLSSocket && socket.authorized && socket.getPeerCertificate().subject?.CN === client.id;
        done(null, ok);
      },
    });
    tlsServer = createTlsServer(
      { cert: server.pem, key: readFileSync(server.keyFile, 'utf8'), ca: deviceCa.pem, requestCert: true, rejectUnauthorized: false },
      (socket) => broker.handle(socket),
    );
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    url = `mqtts://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const link of links) await link.stop().catch(() => undefined);
    await new Promise<void>((resolve) => tlsServer?.close(() => resolve()));
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const link = (clientCert: { cert: string; key: string } | undefined, log: string[]): MqttLink => {
    const l = new MqttLink({
      urls: [url],
      clientId: 'mtls-link',
      username: 'mtls-link',
      password: 'p'.repeat(32),
      will: (session) => ({ topic: 'fleet/v1/devices/mtls-link/presence', payload: Buffer.from(session), qos: 1 }),
      backoff: new Backoff({ baseMs: 20, capMs: 50 }),
      connectTimeoutMs: 2000,
      ca: serverCa.pem,
      ...(clientCert ? { clientCert } : {}),
      log: (m) => log.push(m),
    });
    links.push(l);
    return l;
  };

  it('connects with the configured certificate, and is refused without one', async () => {
    const issued = issueClientCert(deviceCa, dir, 'mtls-link', 'mtls-link');
    const l = link(await readClientCertificate(issued.certFile, issued.keyFile), []);
    const connected = new Promise<void>((resolve) => l.once('connect', () => resolve()));
    l.start();
    await connected;
    await l.stop();

    const log: string[] = [];
    const without = link(undefined, log);
    let ok = false;
    without.on('connect', () => (ok = true));
    without.start();
    await until(() => log.some((m) => /not authorized|bad username/i.test(m)), 5000, 'a refused CONNECT');
    expect(ok).toBe(false);
    await without.stop();
  });

  it("refuses a key that is not the certificate's, naming the field", async () => {
    const a = issueClientCert(deviceCa, dir, 'mtls-a', 'a');
    const b = issueClientCert(deviceCa, dir, 'mtls-b', 'b');
    await expect(readClientCertificate(a.certFile, b.keyFile)).rejects.toThrow(ConfigError);
    await expect(readClientCertificate(a.certFile, b.keyFile)).rejects.toThrow(/mqttClientKeyFile: .* is not the key of/);
    await expect(readClientCertificate(join(dir, 'missing.pem'), a.keyFile)).rejects.toThrow(/mqttClientCertFile: cannot read/);
  });
});
