import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { BrokerFixture } from '../testing/broker.fixture.js';
import { Backoff } from '../util/backoff.js';
import { MqttLink, startEndpoint } from './mqtt-link.js';

/** A port nothing listens on: connection attempts are refused at once. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('MqttLink with several broker endpoints', () => {
  const broker = new BrokerFixture(
    new Map([
      ['link-a', 's'.repeat(32)],
      ['link-b', 's'.repeat(32)],
    ]),
  );
  let dead: string;

  beforeAll(async () => {
    await broker.start();
    dead = `mqtt://127.0.0.1:${await deadPort()}`;
  });
  afterAll(() => broker.close());

  it.each(['link-a', 'link-b'])('reaches the live endpoint from wherever %s starts, with a clean session', async (clientId) => {
    const link = new MqttLink({
      urls: [dead, broker.url],
      clientId,
      username: clientId,
      password: 's'.repeat(32),
      will: (session) => ({ topic: `fleet/v1/devices/${clientId}/presence`, payload: Buffer.from(JSON.stringify({ v: 1, online: false, session })), qos: 1 }),
      backoff: new Backoff({ baseMs: 20, capMs: 50 }),
    });
    const connected = new Promise<string>((resolve) => link.once('connect', resolve));
    link.start();
    try {
      const session = await connected;
      expect(session).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
      expect(link.url).toBe(broker.url);
      const client = (broker.broker as unknown as { clients: Record<string, { clean: boolean }> }).clients[clientId];
      expect(client?.clean).toBe(true);
    } finally {
      await link.stop();
    }
  });
});

describe('MqttLink against a busy broker', () => {
  const broker = new BrokerFixture(new Map([['link-busy', 's'.repeat(32)]]));
  beforeAll(() => broker.start());
  afterAll(() => broker.close());

  it('backs off after CONNACK 3 "server unavailable" and connects once the broker admits it', async () => {
    broker.refuseBusy = 3;
    const delays: number[] = [];
    const link = new MqttLink({
      urls: [broker.url],
      clientId: 'link-busy',
      username: 'link-busy',
      password: 's'.repeat(32),
      will: (session) => ({ topic: 'fleet/v1/devices/link-busy/presence', payload: Buffer.from(JSON.stringify({ v: 1, online: false, session })), qos: 1 }),
      backoff: new Backoff({ baseMs: 20, capMs: 200 }),
      log: (line) => {
        const m = /^mqtt reconnect in (\d+) ms$/.exec(line);
        if (m) delays.push(Number(m[1]));
      },
    });
    const connected = new Promise<string>((resolve) => link.once('connect', resolve));
    link.start();
    try {
      await connected;
      expect(broker.refusedBusy).toBe(3);
      // One scheduled retry per refusal, never a tight loop.
      expect(delays).toHaveLength(3);
    } finally {
      await link.stop();
    }
  });
});

describe('startEndpoint', () => {
  it('spreads a fleet evenly and always picks the same endpoint for a device', () => {
    const counts = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 60_000; i++) counts[startEndpoint(`dev-${i}`, 6)]!++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(600);
    expect(startEndpoint('dev-1', 6)).toBe(startEndpoint('dev-1', 6));
    expect(startEndpoint('dev-1', 1)).toBe(0);
  });
});
