import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import { createTestCa, issueServerCert, requireOpenssl, type TestCa } from '../../../apps/control-plane/src/testing/test-pki.js';
import { Backoff } from '../util/backoff.js';
import { fetchTrusting } from '../util/tls-fetch.js';
import { MqttLink } from './mqtt-link.js';

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The agent's side of TLS: MqttLink over mqtts:// and fetchTrusting, each against the right and a wrong CA. */
describe('agent TLS: mqtts:// and HTTPS verified against the device CA', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let broker: Aedes;
  let tlsServer: TlsServer;
  let httpsServer: HttpsServer;
  let mqttsUrl: string;
  let httpsUrl: string;
  const links: MqttLink[] = [];

  beforeAll(async () => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'agent-tls-'));
    ca = createTestCa(dir, 'agent-ca');
    otherCa = createTestCa(dir, 'agent-other-ca');
    const cert = issueServerCert(ca, dir, 'agent-server');
    const options = { cert: cert.pem, key: readFileSync(cert.keyFile, 'utf8') };
    broker = await Aedes.createBroker();
    tlsServer = createTlsServer(options, (socket) => broker.handle(socket));
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    mqttsUrl = `mqtts://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
    httpsServer = createHttpsServer(options, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-method': req.method ?? '' });
        res.end(req.method === 'POST' ? Buffer.concat(chunks) : 'hello over tls');
      });
    });
    await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
    httpsUrl = `https://127.0.0.1:${(httpsServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const link of links) await link.stop().catch(() => undefined);
    await new Promise<void>((resolve) => tlsServer?.close(() => resolve()));
    await new Promise<void>((resolve) => httpsServer?.close(() => resolve()));
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const link = (urls: string[], caPem: string | undefined, log: string[]): MqttLink => {
    const l = new MqttLink({
      urls,
      clientId: 'tls-link',
      username: 'tls-link',
      password: 'p'.repeat(32),
      will: (session) => ({ topic: 'fleet/v1/devices/tls-link/presence', payload: Buffer.from(session), qos: 1 }),
      backoff: new Backoff({ baseMs: 20, capMs: 50 }),
      connectTimeoutMs: 2000,
      ...(caPem !== undefined ? { ca: caPem } : {}),
      log: (m) => log.push(m),
    });
    links.push(l);
    return l;
  };

  it('connects over mqtts:// with the CA, also after a dead TLS endpoint', async () => {
    const log: string[] = [];
    const l = link(['mqtts://127.0.0.1:1', mqttsUrl], ca.pem, log);
    const connected = new Promise<void>((resolve) => l.once('connect', () => resolve()));
    l.start();
    await connected;
    expect(l.connected).toBe(true);
    await l.stop();
  });

  it.each([
    ['another CA', () => otherCa.pem],
    ['no CA (system trust store)', () => undefined],
  ])('refuses the broker with %s', async (_label, caPem) => {
    const log: string[] = [];
    const l = link([mqttsUrl], caPem(), log);
    let connected = false;
    l.on('connect', () => (connected = true));
    l.start();
    await until(() => log.some((m) => /self[- ]signed|unable to (get|verify)/i.test(m)), 5000, 'a certificate error');
    expect(connected).toBe(false);
    await l.stop();
  });

  it('fetchTrusting verifies HTTPS against the CA and streams the answer', async () => {
    const trusted = fetchTrusting(ca.pem);
    const res = await trusted(`${httpsUrl}/x`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello over tls');
    const posted = await trusted(`${httpsUrl}/y`, { method: 'POST', body: new Uint8Array([1, 2, 3]), headers: { 'content-type': 'application/octet-stream' } });
    expect(posted.headers.get('x-method')).toBe('POST');
    expect([...new Uint8Array(await posted.arrayBuffer())]).toEqual([1, 2, 3]);
    await expect(fetchTrusting(otherCa.pem)(`${httpsUrl}/x`)).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    await expect(fetchTrusting(undefined)(`${httpsUrl}/x`)).rejects.toThrow();
  });
});
