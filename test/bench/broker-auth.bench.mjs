#!/usr/bin/env node
// Broker auth endpoint benchmark: checks/s the control plane answers for an external broker
// (EMQX 5 authn + authz, mosquitto-go-auth acl, in the mix a connected fleet produces), next to a
// raw baseline measured in the same run: a bare node:http server that parses the same JSON bodies
// and answers the same JSON, with no framework, no credential check and no ACL.
// Both servers run in their own process; the load generator (this process) drives each with the
// same keep-alive connections and the same request sequence, in alternating phases (both servers
// run at once), and reports wall-clock checks/s and CPU time per check for each.
// Run after `npx tsc -b tsconfig.build.json`:  node test/bench/broker-auth.bench.mjs
// Env: BENCH_SECONDS (default 10, per target), BENCH_CONNECTIONS (default 64), BENCH_DEVICES
// (default 1000), DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; a scratch database is
// created and dropped) or BENCH_PGLITE=1, BENCH_PROFILE=<dir> (CPU profile of the control plane),
// BENCH_TARGET_RATE (default 5000 checks/s: the run fails below it).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, scratchDatabase, sleep, until, waitForReady } from './helpers/bench-util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const TARGET_RATE = Number(process.env.BENCH_TARGET_RATE ?? 5000);
// PostgreSQL by default, as in the deployments that use an external broker (scale profile); BENCH_PGLITE=1 for PGlite.
const DATABASE_URL = process.env.BENCH_PGLITE ? undefined : (process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
const ADMIN_KEY = `flk_bench_${'a'.repeat(32)}`;
const BROKER_SECRET = `bas_bench_${'b'.repeat(32)}`;
const AUTHORIZATION = `Bearer ${BROKER_SECRET}`;

function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

// ---- raw baseline server (runs as `node broker-auth.bench.mjs --baseline-server <port>`) ----------
if (process.argv[2] === '--baseline-server') {
  const port = Number(process.argv[3]);
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      // CPU seconds used so far, like process_cpu_seconds_total on the control plane's /metrics.
      const { user, system } = process.cpuUsage();
      res.end(String((user + system) / 1e6));
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const ok = body !== undefined && req.headers.authorization === AUTHORIZATION;
      const answer = req.url.includes('/mosquitto/') ? { ok, error: '' } : { result: ok ? 'allow' : 'deny', is_superuser: false };
      const text = JSON.stringify(answer);
      res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  main().catch((err) => {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

/** One request of the mix: what a broker asks for a fleet that is connected and working. */
function requestMix(devices) {
  const out = [];
  for (let i = 0; i < devices.length; i++) {
    const { deviceId, secret } = devices[i];
    // Per device: one CONNECT check, three EMQX publish checks, one subscribe, five go-auth ACL checks.
    out.push({ path: '/api/v1/broker-auth/emqx/authn', body: { clientid: deviceId, username: deviceId, password: secret }, expect: '"allow"' });
    for (const kind of ['telemetry', 'reported', 'presence']) {
      out.push({
        path: '/api/v1/broker-auth/emqx/authz',
        body: { clientid: deviceId, username: deviceId, topic: `fleet/v1/devices/${deviceId}/${kind}`, action: 'publish', qos: '1', retain: 'false' },
        expect: '"allow"',
      });
    }
    out.push({
      path: '/api/v1/broker-auth/emqx/authz',
      body: { clientid: deviceId, username: deviceId, topic: `fleet/v1/devices/${deviceId}/desired/+`, action: 'subscribe', qos: '1', retain: 'false' },
      expect: '"allow"',
    });
    for (const [topic, acc] of [
      [`fleet/v1/devices/${deviceId}/telemetry`, 2],
      [`fleet/v1/devices/${deviceId}/reported`, 2],
      [`fleet/v1/devices/${deviceId}/desired/+`, 4],
      [`fleet/v1/devices/${deviceId}/desired/detector`, 1],
      [`fleet/v1/devices/${deviceId}/commands`, 1],
    ]) {
      out.push({ path: '/api/v1/broker-auth/mosquitto/acl', body: { username: deviceId, clientid: deviceId, topic, acc }, expect: '"ok":true' });
    }
  }
  return out.map((r) => ({ ...r, payload: Buffer.from(JSON.stringify(r.body)) }));
}

function post(agent, port, path, payload) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length, authorization: AUTHORIZATION },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Closed-loop load: CONNECTIONS workers, each sends its next request when the previous answered. */
async function drive(port, requests, seconds, checkAnswers) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies = [];
  let next = 0;
  let done = 0;
  let wrong = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const r = requests[next++ % requests.length];
      const t0 = performance.now();
      try {
        const answer = await post(agent, port, r.path, r.payload);
        latencies.push(performance.now() - t0);
        done++;
        if (checkAnswers && (answer.status !== 200 || !answer.text.includes(r.expect))) {
          if (wrong++ === 0) log(`unexpected answer for ${r.path} ${JSON.stringify(r.body)}: ${answer.status} ${answer.text}`);
        }
      } catch (err) {
        if (errors++ === 0) log(`request failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p) => Number((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN).toFixed(2));
  return {
    requests: done,
    seconds: Number(elapsed.toFixed(2)),
    rate: Math.round(done / elapsed),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    wrongAnswers: wrong,
    errors,
  };
}

async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

async function api(baseUrl, method, path, body) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Starts the control plane (with BENCH_DEVICES enrolled devices) and calls `measure(port, requests,
 * cpu)` while it runs; `cpu()` reads its process_cpu_seconds_total.
 */
async function withControlPlane(measure) {
  const scratch = DATABASE_URL ? await scratchDatabase(DATABASE_URL) : undefined;
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-bench-'));
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, join(root, 'apps/control-plane/dist/main.js')], {
    env: {
      ...process.env,
      DATABASE_URL: scratch?.url ?? '',
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      DATA_DIR: dataDir,
      FLEET_ADMIN_KEY: ADMIN_KEY,
      BROKER_AUTH_SECRET: BROKER_SECRET,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  try {
    await waitForReady(child, baseUrl, 60_000, 'control plane');
    log(`enrolling ${DEVICES} devices`);
    const devices = [];
    for (let i = 0; i < DEVICES; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, DEVICES - i) }, (_, j) => api(baseUrl, 'POST', '/api/v1/devices', { id: `bench-${String(i + j).padStart(6, '0')}` })),
      );
      devices.push(...batch);
    }
    const result = await measure(httpPort, requestMix(devices), () => controlPlaneCpu(baseUrl));
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    const counted = [...metrics.matchAll(/^fleetline_broker_auth_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    return { ...result, countedInMetrics: counted, database: scratch ? 'postgres' : 'pglite' };
  } finally {
    await stopChild(child);
    await scratch?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Starts the bare node:http baseline and calls `measure(port, cpu)` while it runs. */
async function withBaseline(measure) {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--baseline-server', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let ready = false;
  child.stdout.on('data', (d) => (ready ||= String(d).includes('ready')));
  try {
    await until(() => ready, 10_000, 'baseline server');
    return await measure(port, () => baselineCpu(port));
  } finally {
    await stopChild(child);
  }
}

/** Sums alternating phases of one target into one figure. */
function combine(phases) {
  const requests = phases.reduce((n, p) => n + p.requests, 0);
  const seconds = phases.reduce((n, p) => n + p.seconds, 0);
  const cpuSeconds = phases.reduce((n, p) => n + p.cpuSeconds, 0);
  const worst = (key) => Math.max(...phases.map((p) => p[key]));
  return {
    requests,
    seconds: Number(seconds.toFixed(2)),
    rate: Math.round(requests / seconds),
    p50Ms: worst('p50Ms'),
    p99Ms: worst('p99Ms'),
    wrongAnswers: phases.reduce((n, p) => n + (p.wrongAnswers ?? 0), 0),
    errors: phases.reduce((n, p) => n + p.errors, 0),
    ...cpuFigures(cpuSeconds, requests),
  };
}

/** process_cpu_seconds_total of the control plane (includes its background work: a fair, pessimistic figure). */
async function controlPlaneCpu(baseUrl) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}

/**
 * CPU time per answered check and the rate one fully available core would sustain: the figure that
 * survives a busy machine, where the wall-clock rate mostly measures who else is running.
 */
function cpuFigures(cpuSeconds, requests) {
  const cpuMicrosPerCheck = (cpuSeconds * 1e6) / requests;
  return {
    cpuSeconds: Number(cpuSeconds.toFixed(3)),
    cpuMicrosPerCheck: Number(cpuMicrosPerCheck.toFixed(1)),
    ratePerCore: Math.round(1e6 / cpuMicrosPerCheck),
  };
}

async function baselineCpu(port) {
  return Number(await (await fetch(`http://127.0.0.1:${port}/cpu`)).text());
}

async function main() {
  // Both servers run at once and are measured in alternating phases, so a machine whose load
  // changes during the run (other processes) weighs on both figures alike.
  const PHASES = 4;
  const run = await withBaseline((basePort, baseCpu) =>
    withControlPlane(async (cpPort, requests, cpCpu) => {
      await drive(cpPort, requests, Math.min(2, SECONDS), false); // JIT and the caches a connected fleet keeps warm
      await drive(basePort, requests, Math.min(2, SECONDS), false);
      log(`${PHASES} alternating phases of ${SECONDS / PHASES}s per target, ${CONNECTIONS} connections, ${requests.length} distinct requests`);
      const cp = [];
      const base = [];
      for (let i = 0; i < PHASES; i++) {
        for (const [port, cpu, out, check] of [
          [cpPort, cpCpu, cp, true],
          [basePort, baseCpu, base, false],
        ]) {
          const before = await cpu();
          const phase = await drive(port, requests, SECONDS / PHASES, check);
          out.push({ ...phase, cpuSeconds: (await cpu()) - before });
        }
      }
      return { controlPlane: combine(cp), baseline: combine(base) };
    }),
  );
  const controlPlane = { ...run.controlPlane, countedInMetrics: run.countedInMetrics, database: run.database };
  const baseline = run.baseline;
  const ratio = controlPlane.rate / baseline.rate;
  const cpuRatio = baseline.cpuMicrosPerCheck / controlPlane.cpuMicrosPerCheck;

  const rows = [
    ['target', 'checks/s', 'CPU us/check', 'checks/s per core', 'p50 ms', 'p99 ms', 'requests', 'wrong', 'errors'],
    [
      'control plane',
      controlPlane.rate,
      controlPlane.cpuMicrosPerCheck,
      controlPlane.ratePerCore,
      controlPlane.p50Ms,
      controlPlane.p99Ms,
      controlPlane.requests,
      controlPlane.wrongAnswers,
      controlPlane.errors,
    ],
    [
      'bare node:http',
      baseline.rate,
      baseline.cpuMicrosPerCheck,
      baseline.ratePerCore,
      baseline.p50Ms,
      baseline.p99Ms,
      baseline.requests,
      '-',
      baseline.errors,
    ],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const r of rows) process.stdout.write(`${r.map((v, c) => String(v).padStart(widths[c])).join('  ')}\n`);
  process.stdout.write(
    `ratio control plane / bare node:http: ${ratio.toFixed(2)} wall-clock, ${cpuRatio.toFixed(2)} per CPU second  (target ${TARGET_RATE} checks/s)\n`,
  );

  const result = {
    benchmark: 'broker-auth',
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    seconds: SECONDS,
    connections: CONNECTIONS,
    devices: DEVICES,
    targetRate: TARGET_RATE,
    controlPlane,
    bareNodeHttp: baseline,
    ratios: { controlPlaneVsBareNodeHttp: Number(ratio.toFixed(3)), controlPlaneVsBareNodeHttpPerCpuSecond: Number(cpuRatio.toFixed(3)) },
    loadAverage: loadavg(),
  };
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `broker-auth-${result.at.replaceAll(':', '-').replace(/\..+$/, '')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${file}`);
  // Every answer must be right and counted; the rate target applies to a full run only.
  if (controlPlane.wrongAnswers > 0 || controlPlane.errors > 0) process.exitCode = 1;
  if (SECONDS >= 10 && controlPlane.rate < TARGET_RATE) {
    log(`below the target of ${TARGET_RATE} checks/s`);
    process.exitCode = 1;
  }
}
