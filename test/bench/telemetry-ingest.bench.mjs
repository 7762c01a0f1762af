#!/usr/bin/env node
// Telemetry ingest benchmark: end-to-end messages/s from mqtt.js devices through the control
// plane's embedded broker into PostgreSQL (raw samples + rollups), next to two raw baselines
// measured in the same run on the same machine:
//   1. bare aedes: the same payloads published QoS1 to an aedes broker with a counting subscriber;
//   2. raw COPY: the same rows COPY'd into a plain, unindexed table.
// The control plane acknowledges a message only once it is committed, so the end-to-end figure is
// "every PUBACK received" and nothing needs to be polled for: each acknowledged sample is stored.
// Run after `npm run build`:  node test/bench/telemetry-ingest.bench.mjs
// Env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; a scratch database is created
// and dropped), BENCH_DEVICES (default 100), BENCH_MESSAGES (default 60000), BENCH_WINDOW (QoS1
// publishes in flight per device, default 200), BENCH_CPU_PROF (a directory: the control plane runs
// with `node --cpu-prof` and writes its profile there on exit).
import { fork, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, latencyBucketIndex, topics } from '@fleetline/protocol';
import { formatRate, freePort, publishAll, scratchDatabase, sleep, until, waitForReady } from './helpers/bench-util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DEVICES = Number(process.env.BENCH_DEVICES ?? 100);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 60_000);
const PER_DEVICE = Math.ceil(MESSAGES / DEVICES);
const TOTAL = PER_DEVICE * DEVICES;
const WINDOW = Number(process.env.BENCH_WINDOW ?? 200);
const CPU_PROF = process.env.BENCH_CPU_PROF;
/** Rows per chunk streamed to COPY: large chunks, so the baseline measures PostgreSQL, not the stream. */
const COPY_CHUNK_ROWS = 5000;
const ADMIN_KEY = `flk_bench_${'x'.repeat(32)}`;
const LABELS = ['person', 'car', 'bicycle', 'dog', 'cat', 'truck'];

function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

/**
 * One device's messages: consecutive one-minute intervals, oldest first with rising seq, ending now,
 * as an agent flushing its outbox would send them (the ingest refuses a new seq for an interval the
 * device already reported).
 */
function messagesFor(deviceIndex, now) {
  const out = [];
  for (let seq = 0; seq < PER_DEVICE; seq++) {
    const end = new Date(now - (PER_DEVICE - seq) * 60_000);
    const count = 50 + ((seq * 7 + deviceIndex) % 50);
    const buckets = new Array(LATENCY_BUCKET_COUNT).fill(0);
    buckets[latencyBucketIndex(10 + (seq % 30))] = count - 5;
    buckets[latencyBucketIndex(120)] = 5;
    const predictions = {};
    for (let l = 0; l < 4; l++) predictions[LABELS[(seq + l + deviceIndex) % LABELS.length]] = Math.floor(count / 4);
    out.push({
      v: PROTOCOL_VERSION,
      seq,
      model: 'detector',
      version: deviceIndex % 10 === 0 ? '2.0.0' : '1.0.0',
      intervalStart: new Date(end.getTime() - 60_000).toISOString(),
      intervalEnd: end.toISOString(),
      count,
      errors: seq % 17 === 0 ? 1 : 0,
      latencyBuckets: buckets,
      latencySumMs: count * 20,
      predictions,
      vitals: { cpuPercent: 35.5, memoryRssBytes: 180_000_000, memoryFreeBytes: 900_000_000, temperatureC: 51 },
      dropped: 0,
    });
  }
  return out;
}

/**
 * Connects every device, 100 at a time: below the control plane's bound of CONNECTs it
 * authenticates at once (MQTT_MAX_PENDING_CONNECTS, 256), past which it answers CONNACK 3 and a
 * real device backs off. Connecting is not part of what is timed; both paths connect the same way.
 */
async function connectAll(url, creds) {
  const clients = [];
  for (let i = 0; i < creds.length; i += 100) {
    const group = creds.slice(i, i + 100);
    clients.push(
      ...(await Promise.all(
        group.map((c) =>
          mqtt.connectAsync(url, { clientId: c.id, username: c.username, password: c.password, protocolVersion: 4, reconnectPeriod: 0, clean: true }),
        ),
      )),
    );
  }
  return clients;
}

async function startControlPlane(databaseUrl, httpPort, mqttPort, dataDir) {
  const profile = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, join(root, 'apps/control-plane/dist/main.js')], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      DATA_DIR: dataDir,
      FLEET_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  await waitForReady(child, baseUrl, 60_000, 'control plane');
  return { child, baseUrl };
}

async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

async function benchEndToEnd(payloads, deviceIds) {
  const scratch = await scratchDatabase(DATABASE_URL);
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-bench-'));
  const { child, baseUrl } = await startControlPlane(scratch.url, httpPort, mqttPort, dataDir);
  const db = new pg.Client({ connectionString: scratch.url });
  try {
    await db.connect();
    const creds = [];
    for (const id of deviceIds) {
      const res = await fetch(`${baseUrl}/api/v1/devices`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
      });
      if (res.status !== 201) throw new Error(`creating device ${id}: ${res.status} ${await res.text()}`);
      const body = await res.json();
      creds.push({ id, username: id, password: body.secret });
    }
    const clients = await connectAll(`mqtt://127.0.0.1:${mqttPort}`, creds);
    log(`end-to-end: ${deviceIds.length} devices connected, publishing ${TOTAL} messages`);
    // pg_class.reltuples is not exact; count(*) over the day partitions is, and stays cheap at this size.
    const count = async () => Number((await db.query('SELECT count(*)::int AS n FROM telemetry_samples')).rows[0].n);
    // PUBACK means committed: the publishers' own windows are the flow control, as on a fleet.
    const started = performance.now();
    await publishAll(
      clients,
      (i) => topics.telemetry(deviceIds[i]),
      (i) => payloads[i],
      WINDOW,
    );
    const committed = performance.now();
    const stored = await count();
    if (stored !== TOTAL) throw new Error(`every message was acknowledged but ${stored} of ${TOTAL} samples are stored`);
    const rollup = (await db.query('SELECT sum(count)::bigint AS inferences, count(*)::int AS rows FROM telemetry_minute')).rows[0];
    const expected = payloads.flat().reduce((n, m) => n + JSON.parse(m).count, 0);
    await Promise.all(clients.map((c) => c.endAsync()));
    return {
      messages: TOTAL,
      seconds: (committed - started) / 1000,
      rate: TOTAL / ((committed - started) / 1000),
      rollupRows: rollup.rows,
      rollupInferences: Number(rollup.inferences),
      rollupConsistent: Number(rollup.inferences) === expected,
    };
  } finally {
    await db.end().catch(() => undefined);
    await stopChild(child);
    await scratch.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function benchBareAedes(payloads, deviceIds) {
  const broker = fork(join(here, 'helpers/bare-broker.mjs'), [topics.fleetFilter('telemetry')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise((resolve, reject) => {
    broker.once('message', resolve);
    broker.once('exit', (code) => reject(new Error(`bare broker exited with ${code}`)));
  });
  const askCount = () =>
    new Promise((resolve) => {
      broker.once('message', (m) => resolve(m.count));
      broker.send('count');
    });
  try {
    const clients = await connectAll(
      `mqtt://127.0.0.1:${ready.port}`,
      deviceIds.map((id) => ({ id, username: id, password: 'x' })),
    );
    log(`bare aedes: publishing ${TOTAL} messages`);
    const started = performance.now();
    await publishAll(
      clients,
      (i) => topics.telemetry(deviceIds[i]),
      (i) => payloads[i],
      WINDOW,
    );
    await until(async () => (await askCount()) >= TOTAL, 60_000, 'bare broker delivery', 10);
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(clients.map((c) => c.endAsync()));
    return { messages: TOTAL, seconds, rate: TOTAL / seconds };
  } finally {
    broker.send('stop');
    await Promise.race([new Promise((resolve) => broker.once('exit', resolve)), sleep(5000)]);
    if (broker.exitCode === null) broker.kill('SIGKILL');
  }
}

function copyLine(deviceId, m) {
  const esc = (s) => s.replaceAll('\\', '\\\\').replaceAll('\t', '\\t').replaceAll('\n', '\\n');
  return [
    deviceId,
    m.model,
    m.version,
    m.seq,
    m.intervalStart,
    m.intervalEnd,
    m.count,
    m.errors,
    `{${m.latencyBuckets.join(',')}}`,
    m.latencySumMs,
    esc(JSON.stringify(m.predictions)),
    m.vitals.cpuPercent,
    m.vitals.memoryRssBytes,
    m.vitals.memoryFreeBytes,
    m.vitals.temperatureC,
    'fleet',
  ].join('\t');
}

async function benchRawCopy(payloads, deviceIds) {
  const scratch = await scratchDatabase(DATABASE_URL);
  const db = new pg.Client({ connectionString: scratch.url });
  try {
    await db.connect();
    await db.query(`CREATE TABLE raw_samples (
      device_id text, model text, version text, seq bigint, interval_start timestamptz, interval_end timestamptz, count int, errors int,
      latency_buckets int[], latency_sum_ms float8, predictions jsonb, cpu_percent real, memory_rss_bytes bigint, memory_free_bytes bigint,
      temperature_c real, cohort text)`);
    // Rows are built before the clock starts and streamed in large chunks: the baseline is what
    // PostgreSQL's COPY does with these rows, not the cost of JSON parsing or of one stream chunk per row.
    const chunks = [];
    let rows = [];
    for (let i = 0; i < payloads.length; i++) {
      for (const p of payloads[i]) {
        rows.push(copyLine(deviceIds[i], JSON.parse(p)));
        if (rows.length === COPY_CHUNK_ROWS) {
          chunks.push(`${rows.join('\n')}\n`);
          rows = [];
        }
      }
    }
    if (rows.length > 0) chunks.push(`${rows.join('\n')}\n`);
    const started = performance.now();
    await pipeline(Readable.from(chunks), db.query(copyStreams.from('COPY raw_samples FROM STDIN')));
    const seconds = (performance.now() - started) / 1000;
    const n = Number((await db.query('SELECT count(*)::int AS n FROM raw_samples')).rows[0].n);
    if (n !== TOTAL) throw new Error(`COPY wrote ${n} rows, expected ${TOTAL}`);
    return { messages: TOTAL, seconds, rate: TOTAL / seconds };
  } finally {
    await db.end().catch(() => undefined);
    await scratch.drop();
  }
}

async function main() {
  const now = Date.now();
  const deviceIds = Array.from({ length: DEVICES }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  const payloads = deviceIds.map((_, i) => messagesFor(i, now).map((m) => JSON.stringify(m)));
  const bytes = payloads.flat().reduce((n, p) => n + p.length, 0);
  log(`${DEVICES} devices x ${PER_DEVICE} messages = ${TOTAL} messages, ${(bytes / TOTAL).toFixed(0)} B each`);

  const endToEnd = await benchEndToEnd(payloads, deviceIds);
  const bareAedes = await benchBareAedes(payloads, deviceIds);
  const rawCopy = await benchRawCopy(payloads, deviceIds);

  const rows = [
    ['end-to-end (MQTT -> control plane -> PostgreSQL)', endToEnd],
    ['bare aedes QoS1 publish -> subscribe', bareAedes],
    ['raw COPY into a plain table', rawCopy],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = [
    `Telemetry ingest: ${TOTAL} messages from ${DEVICES} devices (${cpus().length} CPUs, PostgreSQL)`,
    `${'path'.padEnd(width)}  ${'seconds'.padStart(8)}  ${'rate'.padStart(16)}`,
    ...rows.map(([name, r]) => `${name.padEnd(width)}  ${r.seconds.toFixed(2).padStart(8)}  ${formatRate(r.rate).padStart(16)}`),
    `end-to-end / bare aedes: ${(endToEnd.rate / bareAedes.rate).toFixed(2)}`,
    `end-to-end / raw COPY:   ${(endToEnd.rate / rawCopy.rate).toFixed(2)}`,
    `rollup rows: ${endToEnd.rollupRows}, rollup inferences match the published ones: ${endToEnd.rollupConsistent}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  const result = {
    benchmark: 'telemetry-ingest',
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    devices: DEVICES,
    messages: TOTAL,
    payloadBytes: Math.round(bytes / TOTAL),
    endToEnd,
    bareAedes,
    rawCopy,
    ratios: { endToEndVsBareAedes: endToEnd.rate / bareAedes.rate, endToEndVsRawCopy: endToEnd.rate / rawCopy.rate },
  };
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `telemetry-ingest-${result.at.replaceAll(':', '-').replace(/\..+$/, '')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${file}`);
  if (!endToEnd.rollupConsistent) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
