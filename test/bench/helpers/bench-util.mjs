import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** A free TCP port on 127.0.0.1 (bound and released; fine for a benchmark on a quiet machine). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Creates a scratch database next to `baseUrl` and returns its URL and a drop function. */
export async function scratchDatabase(baseUrl, prefix = 'fleetline_bench_') {
  const name = `${prefix}${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function until(check, timeoutMs, what, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Publishes every payload of every client at QoS1, keeping at most `window` unacknowledged
 * messages per client (what an agent's outbox flush does, but pipelined). `beforePublish`, when
 * given, is awaited before each message (flow control).
 */
export async function publishAll(clients, topicOf, payloadsOf, window = 200, beforePublish = undefined) {
  await Promise.all(
    clients.map(async (client, i) => {
      const topic = topicOf(i);
      const payloads = payloadsOf(i);
      let next = 0;
      const worker = async () => {
        while (next < payloads.length) {
          const p = payloads[next++];
          if (beforePublish) await beforePublish();
          await client.publishAsync(topic, p, { qos: 1 });
        }
      };
      await Promise.all(Array.from({ length: Math.min(window, payloads.length) }, worker));
    }),
  );
}

export function formatRate(n) {
  return `${Math.round(n).toLocaleString('en-US')} msg/s`;
}

/**
 * Flow control for a publisher that must not outrun a consumer it can only observe by polling
 * (QoS1 PUBACKs come from the broker, not from the database): publishing pauses while more than
 * `maxAhead` messages are published but not yet counted by `consumed()`.
 */
export function aheadLimiter(consumed, maxAhead, pollMs = 20) {
  let published = 0;
  let done = 0;
  let polling;
  const poll = async () => {
    done = await consumed();
  };
  return {
    get published() {
      return published;
    },
    async beforePublish() {
      while (published - done >= maxAhead) {
        polling ??= poll().finally(() => setTimeout(() => (polling = undefined), pollMs));
        await polling;
        if (published - done >= maxAhead) await sleep(pollMs);
      }
      published++;
    },
  };
}

/** Waits until a control plane child process answers /readyz; fails fast if it exits. */
export async function waitForReady(child, baseUrl, timeoutMs, what = 'control plane /readyz') {
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`control plane exited with ${child.exitCode}`);
      try {
        return (await fetch(`${baseUrl}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    timeoutMs,
    what,
    200,
  );
}
