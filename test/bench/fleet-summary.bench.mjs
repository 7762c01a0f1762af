#!/usr/bin/env node
// Fleet summary benchmark: GET /api/v1/fleet/summary on a fleet of 1,000,000 device rows, next to
// GET /healthz (no database, no auth) measured in the same run, interleaved request by request,
// over one keep-alive connection each. The summary reads running counts kept by triggers
// (apps/control-plane/src/fleet/migrations/1764239400000-fleet-counts.ts), so its cost must not
// grow with the fleet: target p95(summary) <= 5x p95(healthz).
// The rows are seeded straight into the control plane's scratch PostgreSQL database after its
// migrations ran (INSERT ... SELECT FROM generate_series, in batches, so the triggers count them as
// any write would): devices (80 % online, ~1 % decommissioned), two models with a few versions.
// For reference it also times the full counts the summary used to run (GROUP BY over the rows),
// and checks that the summary equals them.
// Run after `npm run build`:  node test/bench/fleet-summary.bench.mjs
// Smoke test:                 BENCH_DEVICES=20000 BENCH_REQUESTS=100 node test/bench/fleet-summary.bench.mjs
// Env: BENCH_DEVICES (1000000), BENCH_REQUESTS (per endpoint, 500), BENCH_BATCH (rows per seeding
//      statement, 100000), DATABASE_URL (base, postgres://postgres@127.0.0.1:5432/test; a scratch database is made).
import http from 'node:http';
import { cpus } from 'node:os';
import pg from 'pg';
import { adminApi, log, startControlPlane, writeResult } from './helpers/agent-bench-util.mjs';
import { until } from './helpers/bench-util.mjs';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 1_000_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 500);
const BATCH = Number(process.env.BENCH_BATCH ?? 100_000);
const WARMUP = 50;
const FULL_COUNT_RUNS = 5;
const TARGET_RATIO = 5;
const DETECTOR_VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '2.0.0'];
const SEGMENTER_VERSIONS = ['0.9.0', '1.0.0', '1.1.0'];

for (const [name, value] of Object.entries({ DEVICES, REQUESTS, BATCH })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`BENCH_${name} must be a positive integer`);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s.at(-1) };
}

/** GET over a keep-alive agent; resolves { status, body, ms }. */
function get(agent, baseUrl, path, headers = {}) {
  const url = new URL(path, baseUrl);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, hostname: url.hostname, port: url.port, path: url.pathname, method: 'GET', headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Devices `fs-0000000` ...: 80 % online, every 97th decommissioned (no model rows), the rest on a few versions of two models. */
async function seed(db) {
  const started = performance.now();
  for (let from = 0; from < DEVICES; from += BATCH) {
    const to = Math.min(DEVICES, from + BATCH) - 1;
    await db.query(
      `INSERT INTO devices (id, tags, online, last_seen_at, presence_changed_at, decommissioned_at, credential_hash, hardware_class, agent_version)
       SELECT 'fs-' || lpad(i::text, 7, '0'), jsonb_build_object('region', (ARRAY['eu', 'us', 'ap'])[1 + i % 3]),
              i % 5 <> 0 AND i % 97 <> 0, now(), now(), CASE WHEN i % 97 = 0 THEN now() END,
              CASE WHEN i % 97 <> 0 THEN md5(i::text) || md5((-i)::text) END, 'rpi4', '0.1.0'
         FROM generate_series($1::int, $2::int) AS i`,
      [from, to],
    );
    await db.query(
      `INSERT INTO device_models (device_id, model, desired_version, desired_revision, report_version, report_state, report_revision, active_version)
       SELECT 'fs-' || lpad(i::text, 7, '0'), 'detector', v, 1, v, 'committed', 1, CASE WHEN i % 50 = 0 THEN NULL ELSE v END
         FROM generate_series($1::int, $2::int) AS i, LATERAL (SELECT ($3::text[])[1 + i % cardinality($3::text[])] AS v) x
        WHERE i % 97 <> 0`,
      [from, to, DETECTOR_VERSIONS],
    );
    await db.query(
      `INSERT INTO device_models (device_id, model, desired_version, desired_revision, report_version, report_state, report_revision, active_version)
       SELECT 'fs-' || lpad(i::text, 7, '0'), 'segmenter', v, 1, v, 'committed', 1, v
         FROM generate_series($1::int, $2::int) AS i, LATERAL (SELECT ($3::text[])[1 + (i / 2) % cardinality($3::text[])] AS v) x
        WHERE i % 97 <> 0 AND i % 2 = 0`,
      [from, to, SEGMENTER_VERSIONS],
    );
    if ((to + 1) % (BATCH * 5) === 0 || to === DEVICES - 1) log(`seeded ${(to + 1).toLocaleString('en-US')} devices`);
  }
  await db.query('VACUUM ANALYZE devices');
  await db.query('VACUUM ANALYZE device_models');
  const rows = Number((await db.query(`SELECT count(*)::int AS n FROM device_models`)).rows[0].n);
  return { seconds: (performance.now() - started) / 1000, deviceModelRows: rows };
}

/** The queries the summary ran before it read running counts, and the summary they make. */
async function fullCount(db) {
  const started = performance.now();
  const presence = (await db.query(`SELECT online, count(*)::int AS n FROM devices WHERE decommissioned_at IS NULL GROUP BY online`)).rows;
  const versions = (await db.query(`SELECT model, active_version, count(*)::int AS n FROM device_models GROUP BY model, active_version`)).rows;
  const ms = performance.now() - started;
  const online = presence.find((r) => r.online === true)?.n ?? 0;
  const offline = presence.find((r) => r.online === false)?.n ?? 0;
  const byModel = new Map();
  for (const r of versions) {
    const list = byModel.get(r.model) ?? [];
    if (r.active_version !== null) list.push({ version: r.active_version, devices: r.n });
    byModel.set(r.model, list);
  }
  return { ms, online, offline, byModel };
}

function sameAsFullCount(summary, full) {
  if (summary.devices.online !== full.online || summary.devices.offline !== full.offline) return false;
  if (summary.models.length !== full.byModel.size) return false;
  for (const m of summary.models) {
    const expected = full.byModel.get(m.model);
    if (!expected) return false;
    const key = (list) => JSON.stringify([...list].sort((a, b) => (a.version < b.version ? -1 : 1)));
    if (key(m.versions) !== key(expected)) return false;
  }
  return true;
}

async function main() {
  process.env.DATABASE_URL ||= 'postgres://postgres@127.0.0.1:5432/test';
  const cp = await startControlPlane();
  const db = new pg.Client({ connectionString: cp.databaseUrl });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await db.connect();
    log(`seeding ${DEVICES.toLocaleString('en-US')} devices in batches of ${BATCH.toLocaleString('en-US')}`);
    const seeded = await seed(db);
    // Measured as the fleet runs: the seeding's deltas folded into the counts by the compactor (every 5 s).
    await until(async () => Number((await db.query(`SELECT count(*)::int AS n FROM fleet_count_deltas`)).rows[0].n) === 0, 60_000, 'the counts compacted', 500);

    const auth = { authorization: `Bearer ${cp.adminKey}` };
    for (let i = 0; i < WARMUP; i++) {
      await get(agent, cp.baseUrl, '/api/v1/fleet/summary', auth);
      await get(agent, cp.baseUrl, '/healthz');
    }
    const summaryMs = [];
    const healthzMs = [];
    let failures = 0;
    // Interleaved: both endpoints see the same machine load at the same moments.
    for (let i = 0; i < REQUESTS; i++) {
      const s = await get(agent, cp.baseUrl, '/api/v1/fleet/summary', auth);
      const h = await get(agent, cp.baseUrl, '/healthz');
      if (s.status !== 200 || h.status !== 200) failures++;
      summaryMs.push(s.ms);
      healthzMs.push(h.ms);
    }
    const fullCountMs = [];
    let full;
    for (let i = 0; i < FULL_COUNT_RUNS; i++) {
      full = await fullCount(db);
      fullCountMs.push(full.ms);
    }
    const summary = await adminApi(cp.baseUrl, cp.adminKey).summary();
    const consistent = sameAsFullCount(summary, full);

    const s = stats(summaryMs);
    const h = stats(healthzMs);
    const f = stats(fullCountMs);
    const ratio = s.p95 / h.p95;
    const fmt = (v) => (v === null || v === undefined ? '-' : v.toFixed(2).padStart(8));
    const lines = [
      `Fleet summary: ${DEVICES.toLocaleString('en-US')} devices, ${seeded.deviceModelRows.toLocaleString('en-US')} device_models rows (${cpus().length} CPUs, PostgreSQL)`,
      `                                   p50 ms   p95 ms   p99 ms   max ms`,
      `GET /api/v1/fleet/summary        ${fmt(s.p50)} ${fmt(s.p95)} ${fmt(s.p99)} ${fmt(s.max)}   (${REQUESTS} requests)`,
      `GET /healthz (raw baseline)      ${fmt(h.p50)} ${fmt(h.p95)} ${fmt(h.p99)} ${fmt(h.max)}   (${REQUESTS} requests, interleaved)`,
      `full counts it replaced (SQL)    ${fmt(f.p50)} ${fmt(f.p95)} ${fmt(f.p99)} ${fmt(f.max)}   (${FULL_COUNT_RUNS} runs)`,
      `p95 summary / p95 healthz: ${ratio.toFixed(2)} (target <= ${TARGET_RATIO}: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})`,
      `summary equals the full count: ${consistent ? 'yes' : 'NO'}; failed requests: ${failures}; seeding took ${seeded.seconds.toFixed(1)} s`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    writeResult('fleet-summary', {
      benchmark: 'fleet-summary',
      at: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      devices: DEVICES,
      deviceModelRows: seeded.deviceModelRows,
      requests: REQUESTS,
      summaryMs: s,
      healthzMs: h,
      fullCountMs: f,
      ratios: { summaryP95VsHealthzP95: ratio },
      target: { maxRatio: TARGET_RATIO, met: ratio <= TARGET_RATIO },
      consistent,
      failures,
      seedSeconds: seeded.seconds,
    });
    if (!consistent || failures > 0) {
      log('FAILED: the summary must answer every request and equal a full count of the rows');
      process.exitCode = 1;
    }
  } finally {
    agent.destroy();
    await db.end().catch(() => undefined);
    await cp.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
