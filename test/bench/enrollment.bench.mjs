#!/usr/bin/env node
// Enrollment benchmark: POST /api/v1/enroll at fleet scale against the built control plane on
// PostgreSQL (a scratch database), with bounded concurrency, next to a raw baseline measured in
// the same run on the same machine: the same number of device rows written by bare
// `INSERT … SELECT FROM unnest(…)` statements through pg, in batches of the control plane's
// enrollment batch size, into a table shaped and indexed like `devices` (secrets generated and
// hashed inside the timed section, as the control plane does).
// While the enrollments run, a few pre-registered devices connect over MQTT one after another;
// their connect times show whether enrollment starves device authentication.
// Run after `npm run build`:  node test/bench/enrollment.bench.mjs
// Env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; scratch databases are created
//      and dropped), BENCH_ENROLLMENTS (default 10000), BENCH_CONCURRENCY (default 200),
//      BENCH_BATCH (raw baseline batch size, default 200 = the control plane's), BENCH_BACKEND
//      (postgres, default; pglite runs the control plane on its embedded database instead, the
//      baseline stays on PostgreSQL), BENCH_LOG_LEVEL (control plane's LOG_LEVEL, default warn; `log`
//      shows each enrollment batch's size and commit time).
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import mqtt from 'mqtt';
import pg from 'pg';
import { scratchDatabase } from './helpers/bench-util.mjs';
import { adminApi, log, startControlPlane, writeResult } from './helpers/agent-bench-util.mjs';

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const ENROLLMENTS = Number(process.env.BENCH_ENROLLMENTS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 200);
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const BACKEND = process.env.BENCH_BACKEND ?? 'postgres';
const WARMUP = 200;
const PROBES = 20;

if (!['postgres', 'pglite'].includes(BACKEND)) throw new Error(`BENCH_BACKEND must be postgres or pglite, not ${BACKEND}`);
for (const [name, value] of Object.entries({ ENROLLMENTS, CONCURRENCY, BATCH })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`BENCH_${name} must be a positive integer`);
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** POSTs JSON over a keep-alive agent; resolves { status, body, ms }. */
function post(agent, baseUrl, path, body) {
  const payload = JSON.stringify(body);
  const url = new URL(path, baseUrl);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          let parsed;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - started });
        });
        res.on('error', (err) => resolve({ status: 0, body: { code: `socket: ${err.message}` }, ms: performance.now() - started }));
      },
    );
    req.on('error', (err) => resolve({ status: 0, body: { code: `socket: ${err.message}` }, ms: performance.now() - started }));
    req.end(payload);
  });
}

/** Runs `count` jobs, at most `concurrency` at once. */
async function pooled(count, concurrency, job) {
  const out = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

async function benchControlPlane() {
  if (BACKEND === 'postgres') process.env.DATABASE_URL = DATABASE_URL;
  else delete process.env.DATABASE_URL;
  const cp = await startControlPlane({ LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    const api = adminApi(cp.baseUrl, cp.adminKey);
    // Each device sets tag `n` itself, so the token allows that key.
    const token = await api.token('bench', { fleet: 'bench' }, ['n']);
    const probes = [];
    for (let i = 0; i < PROBES; i++) {
      const creds = await api.call('POST', '/api/v1/devices', { id: `probe-${i}` });
      probes.push({ id: creds.deviceId, secret: creds.secret });
    }
    // Opens the sockets and warms the code paths; not counted.
    await pooled(WARMUP, CONCURRENCY, (i) => post(agent, cp.baseUrl, '/api/v1/enroll', { token, id: `warm-${i}` }));

    let running = true;
    const connectMs = [];
    const probing = (async () => {
      for (const p of probes) {
        if (!running) break;
        const started = performance.now();
        const client = await mqtt.connectAsync(cp.mqttUrl, {
          clientId: p.id,
          username: p.id,
          password: p.secret,
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 60_000,
        });
        connectMs.push(performance.now() - started);
        await client.endAsync();
      }
    })();

    log(`enrolling ${ENROLLMENTS} devices, ${CONCURRENCY} in flight (${cp.database})`);
    const cpuBefore = cpuSeconds(cp.child.pid);
    const started = performance.now();
    const answers = await pooled(ENROLLMENTS, CONCURRENCY, (i) =>
      post(agent, cp.baseUrl, '/api/v1/enroll', {
        token,
        id: `bench-${String(i).padStart(6, '0')}`,
        tags: { n: String(i % 100) },
        inventory: { hardwareClass: 'rpi4', os: 'linux', arch: 'arm64', agentVersion: '0.1.0', runtimes: { onnx: '1.20.0' } },
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const controlPlaneCpuSeconds = cpuSeconds(cp.child.pid) - cpuBefore;
    running = false;
    await probing;

    const statuses = {};
    for (const a of answers) {
      const key = a.status === 201 ? '201' : `${a.status} ${a.body?.code ?? '?'}`;
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    const ok = answers.filter((a) => a.status === 201);
    const distinct = new Set(ok.map((a) => a.body.deviceId)).size;
    const tokens = await api.call('GET', '/api/v1/enrollment-tokens');
    const uses = tokens.items.find((t) => t.name === 'bench').uses - WARMUP;
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);
    return {
      database: cp.database,
      enrollments: ENROLLMENTS,
      concurrency: CONCURRENCY,
      seconds,
      rate: ENROLLMENTS / seconds,
      succeeded: ok.length,
      failures: ENROLLMENTS - ok.length,
      statuses,
      distinctDevices: distinct,
      tokenUses: uses,
      controlPlaneCpuMsPerEnrollment: (controlPlaneCpuSeconds * 1000) / ENROLLMENTS,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) },
      mqttConnectMsDuringBurst: connectMs.map((ms) => Math.round(ms)),
    };
  } finally {
    agent.destroy();
    await cp.stop();
  }
}

/** The devices table's shape and indexes (apps/control-plane/src/devices/migrations), without the token foreign key. */
const RAW_TABLE = `
  CREATE TABLE raw_devices (
    id text COLLATE "C" PRIMARY KEY, name text, tags jsonb NOT NULL DEFAULT '{}', inventory jsonb, hardware_class text,
    agent_version text, credential_hash text, online boolean NOT NULL DEFAULT false, last_seen_at timestamptz,
    presence_changed_at timestamptz, enrolled_at timestamptz NOT NULL DEFAULT now(), enrollment_token_id uuid,
    decommissioned_at timestamptz, last_report_seq bigint NOT NULL DEFAULT -1, inventory_seq bigint NOT NULL DEFAULT -1);
  CREATE INDEX raw_devices_tags_idx ON raw_devices USING gin (tags jsonb_path_ops);
  CREATE INDEX raw_devices_presence_idx ON raw_devices (online, id) WHERE decommissioned_at IS NULL;
  CREATE INDEX raw_devices_decommissioned_idx ON raw_devices (id) WHERE decommissioned_at IS NOT NULL`;

async function benchRawInsert() {
  const scratch = await scratchDatabase(DATABASE_URL);
  const db = new pg.Client({ connectionString: scratch.url });
  try {
    await db.connect();
    await db.query(RAW_TABLE);
    const tokenId = '00000000-0000-4000-8000-000000000001';
    const inventory = JSON.stringify({ hardwareClass: 'rpi4', os: 'linux', arch: 'arm64', agentVersion: '0.1.0', runtimes: { onnx: '1.20.0' } });
    const started = performance.now();
    for (let from = 0; from < ENROLLMENTS; from += BATCH) {
      const n = Math.min(BATCH, ENROLLMENTS - from);
      const ids = [];
      const tags = [];
      const hashes = [];
      for (let i = from; i < from + n; i++) {
        ids.push(`bench-${String(i).padStart(6, '0')}`);
        tags.push(JSON.stringify({ n: String(i % 100), fleet: 'bench' }));
        hashes.push(sha256(`fld_${randomBytes(32).toString('base64url')}`));
      }
      await db.query(
        `INSERT INTO raw_devices (id, name, tags, credential_hash, enrollment_token_id, inventory, hardware_class, agent_version)
         SELECT u.id, NULL, u.tags, u.credential_hash, $4::uuid, $5::jsonb, 'rpi4', '0.1.0'
           FROM unnest($1::text[], $2::jsonb[], $3::text[]) AS u(id, tags, credential_hash)
         ON CONFLICT (id) DO NOTHING`,
        [ids, tags, hashes, tokenId, inventory],
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const rows = Number((await db.query('SELECT count(*)::int AS n FROM raw_devices')).rows[0].n);
    if (rows !== ENROLLMENTS) throw new Error(`raw insert wrote ${rows} rows, expected ${ENROLLMENTS}`);
    return { rows, batch: BATCH, seconds, rate: rows / seconds };
  } finally {
    await db.end().catch(() => undefined);
    await scratch.drop();
  }
}

async function main() {
  const endToEnd = await benchControlPlane();
  const raw = await benchRawInsert();
  const ratio = endToEnd.rate / raw.rate;
  const lines = [
    `Enrollment: ${ENROLLMENTS} devices over HTTP, ${CONCURRENCY} in flight (${cpus().length} CPUs, control plane on ${endToEnd.database})`,
    `end-to-end POST /api/v1/enroll       ${endToEnd.seconds.toFixed(2).padStart(8)} s  ${Math.round(endToEnd.rate).toLocaleString('en-US').padStart(8)} enrollments/s`,
    `raw INSERT … unnest, batches of ${String(BATCH).padEnd(4)} ${raw.seconds.toFixed(2).padStart(8)} s  ${Math.round(raw.rate).toLocaleString('en-US').padStart(8)} rows/s`,
    `end-to-end / raw: ${ratio.toFixed(3)}`,
    `failures: ${endToEnd.failures} (${JSON.stringify(endToEnd.statuses)}), distinct devices: ${endToEnd.distinctDevices}, token uses: ${endToEnd.tokenUses}`,
    `control-plane CPU per enrollment: ${endToEnd.controlPlaneCpuMsPerEnrollment.toFixed(2)} ms (its ceiling on one idle core: ${Math.round(1000 / endToEnd.controlPlaneCpuMsPerEnrollment).toLocaleString('en-US')}/s)`,
    `latency ms: p50 ${endToEnd.latencyMs.p50?.toFixed(1)}, p99 ${endToEnd.latencyMs.p99?.toFixed(1)}, max ${endToEnd.latencyMs.max?.toFixed(1)}`,
    `MQTT connects during the burst (ms): ${endToEnd.mqttConnectMsDuringBurst.join(', ') || 'none (the burst ended first)'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  writeResult('enrollment', {
    benchmark: 'enrollment',
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    endToEnd,
    rawInsert: raw,
    ratios: { endToEndVsRawInsert: ratio },
  });
  const consistent = endToEnd.failures === 0 && endToEnd.distinctDevices === ENROLLMENTS && endToEnd.tokenUses === ENROLLMENTS;
  if (!consistent) {
    log('FAILED: every enrollment must succeed, with one distinct device and one token use each');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
