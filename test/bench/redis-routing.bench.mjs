#!/usr/bin/env node
// Redis routing between control-plane replicas: what one message to one device costs when N
// devices are subscribed, in the two ways to route it.
//   pattern: the way mqemitter-redis (aedes' Redis emitter) does it, one PSUBSCRIBE per subscribed
//            MQTT topic pattern (`fleet/v1/devices/<id>/desired/*`); Redis matches every PUBLISH
//            against every pattern of the server, so a PUBLISH costs O(N).
//   channel: what the clustered device channel does, one plain SUBSCRIBE per connected device
//            (`fleetline:device:<id>`); a PUBLISH is a hash lookup.
// Subscriptions are spread over 6 subscriber connections (one per replica). For each N and way it
// measures PUBLISH throughput (pipelined, a window of messages in flight), end-to-end latency
// (publish -> subscriber callback), the round trip of one PUBLISH at a time, and Redis memory per
// subscription. Every message must arrive exactly once.
// Run:  node test/bench/redis-routing.bench.mjs        Smoke:  BENCH_SUBSCRIPTIONS=1000,5000 node ...
// Env: BENCH_SUBSCRIPTIONS (1000,10000,100000,200000), BENCH_MESSAGES (per run, 20000),
//      BENCH_RUN_SECONDS (cap per throughput run, 20), BENCH_ROUND_TRIPS (2000), BENCH_WINDOW (200),
//      REDIS_URL (redis://127.0.0.1:6379).
// PSUBSCRIBE patterns slow every PUBLISH on the whole Redis server: run it on a quiet machine.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { log, median, writeResult } from './helpers/agent-bench-util.mjs';

const SIZES = (process.env.BENCH_SUBSCRIPTIONS ?? '1000,10000,100000,200000')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const RUN_SECONDS = Number(process.env.BENCH_RUN_SECONDS ?? 20);
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 2000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 200);
const CONNECTIONS = 6;
const CHUNK = 1000;
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const run = randomBytes(3).toString('hex');

const WAYS = {
  pattern: {
    subscription: (id) => `fleet/v1/devices/${id}/desired/*`,
    channel: (id) => `fleet/v1/devices/${id}/desired/counter`,
    subscribe: (redis, names) => redis.psubscribe(...names),
    unsubscribe: (redis) => redis.punsubscribe(),
    event: 'pmessageBuffer',
    // pmessageBuffer: (pattern, channel, message)
    payloadOf: (args) => args[2],
  },
  channel: {
    subscription: (id) => `fleetline:device:${id}`,
    channel: (id) => `fleetline:device:${id}`,
    subscribe: (redis, names) => redis.subscribe(...names),
    unsubscribe: (redis) => redis.unsubscribe(),
    event: 'messageBuffer',
    payloadOf: (args) => args[1],
  },
};

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round3 = (n) => (n === null ? null : Number(n.toFixed(3)));

async function usedMemory(redis) {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

async function measure(n, wayName) {
  const way = WAYS[wayName];
  const ids = Array.from({ length: n }, (_, i) => `bench-${run}-${i}`);
  const pub = new Redis(REDIS_URL, { enableAutoPipelining: false, maxRetriesPerRequest: 2 });
  const subs = Array.from({ length: CONNECTIONS }, () => new Redis(REDIS_URL, { maxRetriesPerRequest: 2 }));
  try {
    const memoryBefore = await usedMemory(pub);
    let received = 0;
    let duplicates = 0;
    const seen = new Uint8Array(MESSAGES + ROUND_TRIPS + 1);
    const latencies = [];
    for (const s of subs) {
      s.on(way.event, (...args) => {
        const payload = way.payloadOf(args);
        // payload: "<seq> <sent at, performance.now() ms>"
        const text = payload.toString('latin1');
        const space = text.indexOf(' ');
        const seq = Number(text.slice(0, space));
        if (seen[seq]) duplicates++;
        else seen[seq] = 1;
        received++;
        latencies.push(performance.now() - Number(text.slice(space + 1)));
      });
    }
    const subscribeStarted = performance.now();
    await Promise.all(
      subs.map(async (s, c) => {
        const mine = ids.filter((_, i) => i % CONNECTIONS === c).map(way.subscription);
        for (let i = 0; i < mine.length; i += CHUNK) await way.subscribe(s, mine.slice(i, i + CHUNK));
      }),
    );
    const subscribeSeconds = (performance.now() - subscribeStarted) / 1000;
    const memoryAfter = await usedMemory(pub);

    // Round trip of one PUBLISH at a time (what the server spends per message, plus the network).
    const rtts = [];
    let seq = 1;
    const rttDeadline = performance.now() + RUN_SECONDS * 1000;
    for (let i = 0; i < ROUND_TRIPS && performance.now() < rttDeadline; i++) {
      const id = ids[(i * 7919) % n];
      const t = performance.now();
      const receivers = await pub.publish(way.channel(id), `${seq++} ${t}`);
      rtts.push(performance.now() - t);
      if (receivers !== 1) throw new Error(`${wayName}: PUBLISH reached ${receivers} subscribers, expected 1`);
    }
    const roundTripsDone = seq - 1;
    await waitFor(() => received >= roundTripsDone, 10_000, `${wayName}: round-trip messages delivered`);
    latencies.length = 0; // end-to-end latencies of the throughput run only

    // Throughput: a window of PUBLISHes in flight, until MESSAGES or RUN_SECONDS.
    const startReceived = received;
    const started = performance.now();
    const deadline = started + RUN_SECONDS * 1000;
    let sent = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: WINDOW }, async () => {
        while (next < MESSAGES && performance.now() < deadline) {
          const i = next++;
          await pub.publish(way.channel(ids[(i * 104_729) % n]), `${seq++} ${performance.now()}`);
          sent++;
        }
      }),
    );
    const publishSeconds = (performance.now() - started) / 1000;
    await waitFor(() => received - startReceived >= sent, 30_000, `${wayName}: every message delivered`);
    const deliveredSeconds = (performance.now() - started) / 1000;
    const sorted = latencies.sort((a, b) => a - b);
    const rttSorted = rtts.sort((a, b) => a - b);
    return {
      subscriptions: n,
      way: wayName,
      subscribeSeconds: Number(subscribeSeconds.toFixed(2)),
      redisBytesPerSubscription: Math.round((memoryAfter - memoryBefore) / n),
      publishPerSecond: Math.round(sent / publishSeconds),
      deliveredPerSecond: Math.round(sent / deliveredSeconds),
      messages: sent,
      capped: sent < MESSAGES,
      endToEndMs: { p50: round3(median(sorted)), p99: round3(percentile(sorted, 99)), max: round3(sorted.at(-1) ?? null) },
      publishRoundTripMs: { p50: round3(median(rttSorted)), p99: round3(percentile(rttSorted, 99)), count: rttSorted.length },
      received: received,
      duplicates,
    };
  } finally {
    await Promise.all(subs.map((s) => way.unsubscribe(s).catch(() => undefined)));
    for (const s of subs) s.disconnect();
    pub.disconnect();
  }
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const results = [];
for (const n of SIZES) {
  for (const way of ['channel', 'pattern']) {
    log(`${n} subscriptions, ${way}`);
    const r = await measure(n, way);
    if (r.duplicates > 0) throw new Error(`${way} ${n}: ${r.duplicates} duplicate deliveries`);
    log(`${n} ${way}: ${r.publishPerSecond} PUBLISH/s, e2e p50 ${r.endToEndMs.p50} ms, round trip p50 ${r.publishRoundTripMs.p50} ms`);
    results.push(r);
  }
}

const lines = [
  ['subscriptions', 'way', 'PUBLISH/s', 'e2e p50 / p99 ms', 'one PUBLISH p50 / p99 ms', 'Redis B/sub', 'subscribe s', 'note'],
  ...results.map((r) => [
    String(r.subscriptions),
    r.way === 'pattern' ? 'PSUBSCRIBE per device (mqemitter-redis)' : 'SUBSCRIBE per device channel',
    String(r.publishPerSecond),
    `${r.endToEndMs.p50} / ${r.endToEndMs.p99}`,
    `${r.publishRoundTripMs.p50} / ${r.publishRoundTripMs.p99}`,
    String(r.redisBytesPerSubscription),
    String(r.subscribeSeconds),
    r.capped ? `capped at ${RUN_SECONDS} s (${r.messages} msgs)` : '',
  ]),
];
const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
process.stdout.write(
  `\nRedis routing, ${CONNECTIONS} subscriber connections, window ${WINDOW}, ${REDIS_URL}\n\n${lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}\n\n`,
);
const ratios = SIZES.map((n) => {
  const c = results.find((r) => r.subscriptions === n && r.way === 'channel');
  const p = results.find((r) => r.subscriptions === n && r.way === 'pattern');
  return { subscriptions: n, channelOverPatternThroughput: Number((c.publishPerSecond / p.publishPerSecond).toFixed(2)) };
});
process.stdout.write(`channel / pattern PUBLISH throughput: ${ratios.map((r) => `${r.subscriptions}: ${r.channelOverPatternThroughput}x`).join(', ')}\n\n`);
writeResult('redis-routing', {
  at: new Date().toISOString(),
  node: process.version,
  redis: REDIS_URL,
  connections: CONNECTIONS,
  window: WINDOW,
  results,
  ratios,
});
