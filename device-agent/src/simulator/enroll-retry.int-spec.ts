import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { DeviceCredentials } from '@fleetline/protocol';
import { enrollAnswer } from '../testing/agent-options.fixture.js';
import { EnrollClient } from './enroll-client.js';
import { enrollWithRetry } from './simulation.js';

const credentials = (baseUrl: string): DeviceCredentials => enrollAnswer(baseUrl, 'sim-1');

describe("the simulator's enrollment retries", () => {
  let server: Server | undefined;
  const client = new EnrollClient(4);

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('retries a connection the server reset (a replica shedding load), and enrolls', async () => {
    let requests = 0;
    server = createServer((req, res) => {
      requests++;
      // The first two requests get their socket reset, as an overloaded replica does (ECONNRESET).
      if (requests <= 2) {
        req.socket.resetAndDestroy();
        return;
      }
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(credentials(url)));
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const creds = await enrollWithRetry(client, [url], 0, {
      token: 'fle_0123456789abcdef0123',
      id: 'sim-1',
      inventory: { hardwareClass: 'sim', os: 'linux', arch: 'x64', accelerators: [], agentVersion: '0.1.0', runtimes: {} },
    });
    expect(creds.deviceId).toBe('sim-1');
    expect(requests).toBe(3);
  }, 30_000);
});
