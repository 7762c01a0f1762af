#!/usr/bin/env node
// Rollout fan-out benchmark: how fast a staged rollout reaches a connected fleet, against the
// same per-device exchange over a bare broker. In one run it measures
//   fleetline: BENCH_DEVICES simulated devices (`fleet-agent simulate`, downloads and TUF refresh
//              included) go through a 4-wave rollout (BENCH_WAVES, default 1,10,50,100 %) with zero
//              bake time: POST /api/v1/rollouts -> rollout `completed` with every device recorded
//              `committed` in the database (PostgreSQL with DATABASE_URL, else PGlite).
//   raw:       a bare aedes broker (no auth, no ACL, no database) and the same number of mqtt.js
//              clients, same worker layout: the bench publishes a desired state to every device,
//              each device answers with a report, counted until all answered.
//   admin API: p99 of GET /api/v1/devices?limit=100 and GET /api/v1/rollouts/{id}, first idle (fleet
//              connected, nothing rolling out), then while the rollout runs.
// Prints devices/s of both, their ratio, the total time, and the targets (issue #15): fan-out total
// <= 10 s, fleetline/raw >= 0.6x, admin p99 during the rollout <= 3x its idle p99.
// Run after `npm run build`:  node test/bench/rollout-fanout.bench.mjs
// Env: BENCH_DEVICES (default 10000; a smoke run: 500), BENCH_WORKERS (default 4),
//      BENCH_SOURCE_ADDRESSES (default 4), BENCH_WAVES (default 1,10,50,100),
//      BENCH_API_SAMPLES (idle requests per endpoint, default 200), DATABASE_URL,
//      ROLLOUT_TICK_SECONDS (passed to the control plane, default 0.5).
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { topics } from '@fleetline/protocol';
import { adminApi, agentMain, cleanEnv, log, root, sleep, startControlPlane, stopChild, until, writeResult } from './helpers/agent-bench-util.mjs';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 10_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const SOURCE_ADDRESSES = Number(process.env.BENCH_SOURCE_ADDRESSES ?? 4);
const WAVES = (process.env.BENCH_WAVES ?? '1,10,50,100').split(',').map(Number);
const API_SAMPLES = Number(process.env.BENCH_API_SAMPLES ?? 200);
const TICK_SECONDS = process.env.ROLLOUT_TICK_SECONDS ?? '0.5';
const TARGET_TOTAL_SECONDS = 10;
const TARGET_RATIO = 0.6;
const TARGET_API_P99_FACTOR = 3;
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Baseline worker (forked by this script): `count` mqtt.js clients from index `offset`, each
// subscribed to its desired topics and answering every desired state with one report.
if (process.argv[2] === '--baseline-worker') {
  const [, , , port, offset, count] = process.argv;
  const clients = [];
  let next = 0;
  const connectOne = (i) =>
    new Promise((resolve, reject) => {
      const id = `raw-${String(Number(offset) + i).padStart(6, '0')}`;
      const localAddress = `127.0.0.${1 + ((Number(offset) + i) % SOURCE_ADDRESSES)}`;
      const client = new mqtt.MqttClient(() => createConnection({ host: '127.0.0.1', port: Number(port), localAddress }), {
        protocolVersion: 4,
        clientId: id,
        clean: true,
        keepalive: 60,
        reconnectPeriod: 1000,
        connectTimeout: 60_000,
      });
      client.on('message', (_topic, payload) => {
        const desired = JSON.parse(payload.toString());
        client.publish(
          topics.reported(id),
          JSON.stringify({ model: desired.model, version: desired.version, revision: desired.revision, state: 'committed', at: new Date().toISOString() }),
          { qos: 1 },
        );
      });
      client.once('connect', () => client.subscribe(topics.desiredAll(id), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      client.on('error', () => undefined); // reconnects
      clients.push(client);
    });
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < Number(count)) await connectOne(next++);
    }),
  );
  process.send({ connected: clients.length });
  process.on('message', (m) => {
    if (m === 'stop') {
      for (const c of clients) c.end(true);
      process.exit(0);
    }
  });
} else {
  await main();
}

function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function timed(fn) {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** Latencies (ms) of the two admin reads, `samples` sequential requests each. */
async function apiLatencies(api, rolloutId, samples) {
  const devices = [];
  const rollout = [];
  for (let i = 0; i < samples; i++) {
    devices.push(await timed(() => api.call('GET', '/api/v1/devices?limit=100')));
    rollout.push(await timed(() => api.call('GET', `/api/v1/rollouts/${rolloutId}`)));
  }
  return { devices, rollout };
}

async function rawBaseline() {
  const broker = fork(join(root, 'test/bench/helpers/bare-broker.mjs'), ['fleet/v1/devices/+/reported'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve) => broker.on('message', (m) => m.ready && resolve(m.port)));
  const perWorker = Math.ceil(DEVICES / WORKERS);
  const workers = [];
  const connected = [];
  for (let w = 0; w < WORKERS; w++) {
    const count = Math.max(0, Math.min(perWorker, DEVICES - w * perWorker));
    const child = fork(self, ['--baseline-worker', String(port), String(w * perWorker), String(count)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: cleanEnv(),
    });
    workers.push(child);
    connected.push(new Promise((resolve) => child.once('message', resolve)));
  }
  await Promise.all(connected);
  const reportCount = () =>
    new Promise((resolve) => {
      const onMessage = (m) => {
        if (typeof m.count === 'number') {
          broker.off('message', onMessage);
          resolve(m.count);
        }
      };
      broker.on('message', onMessage);
      broker.send('count');
    });
  const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'raw-control-plane', clean: true, protocolVersion: 4 });
  const started = Date.now();
  // Windowed like the control plane's publishes (QoS 1, bounded in flight).
  let next = 0;
  await Promise.all(
    Array.from({ length: 200 }, async () => {
      while (next < DEVICES) {
        const i = next++;
        const id = `raw-${String(i).padStart(6, '0')}`;
        await publisher.publishAsync(topics.desired(id, 'counter'), JSON.stringify({ model: 'counter', version: '2.0.0', revision: 1 }), { qos: 1 });
      }
    }),
  );
  let answered = 0;
  await until(
    async () => {
      answered = await reportCount();
      return answered >= DEVICES;
    },
    600_000,
    'every raw device answered',
    20,
  );
  const seconds = (Date.now() - started) / 1000;
  await publisher.endAsync();
  for (const c of workers) c.send('stop');
  await Promise.all(workers.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', resolve)))));
  broker.send('stop');
  await Promise.race([new Promise((resolve) => broker.once('exit', resolve)), sleep(10_000)]);
  if (broker.exitCode === null) broker.kill('SIGKILL');
  return { seconds, answered, devicesPerSecond: DEVICES / seconds };
}

async function main() {
  log(`${DEVICES} devices, ${WORKERS} workers, waves ${WAVES.join('/')} %, tick ${TICK_SECONDS} s`);
  const cp = await startControlPlane({ ROLLOUT_TICK_SECONDS: TICK_SECONDS });
  const api = adminApi(cp.baseUrl, cp.adminKey);
  let sim;
  let simErr = '';
  const result = {
    at: new Date().toISOString(),
    node: process.version,
    devices: DEVICES,
    workers: WORKERS,
    waves: WAVES,
    tickSeconds: Number(TICK_SECONDS),
    database: cp.database,
  };
  try {
    await api.createModel('counter');
    await api.upload('counter', '2.0.0', 'counter.bin', randomBytes(64 * 1024), { runtime: 'simulated' });
    // A rollout of another model that targets nobody and never starts: the idle GET /rollouts/{id}.
    await api.createModel('probe');
    await api.upload('probe', '1.0.0', 'probe.bin', randomBytes(1024), { runtime: 'simulated' });
    const probe = await api.call('POST', '/api/v1/rollouts', {
      model: 'probe',
      version: '1.0.0',
      target: { tags: { fleet: 'nobody' } },
      waves: [{ percent: 100 }],
      startAt: '2099-01-01T00:00:00Z',
    });
    const token = await api.token('fanout', { fleet: 'fanout' });

    const connectStarted = Date.now();
    sim = spawn(
      process.execPath,
      [
        agentMain,
        'simulate',
        '--server',
        cp.baseUrl,
        '--token',
        token,
        '--devices',
        String(DEVICES),
        '--workers',
        String(WORKERS),
        '--source-addresses',
        String(SOURCE_ADDRESSES),
        '--telemetry-interval',
        '300',
        '--id-prefix',
        'fanout',
      ],
      { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    sim.stderr.on('data', (d) => {
      simErr += d.toString();
      if (simErr.length > 200_000) simErr = simErr.slice(-100_000);
    });
    await until(
      async () => {
        if (sim.exitCode !== null) throw new Error(`simulator exited with ${sim.exitCode}:\n${simErr.slice(-3000)}`);
        return (await api.summary()).devices.online >= DEVICES;
      },
      1_800_000,
      'every device online',
      1000,
    );
    log(`all ${DEVICES} devices online after ${((Date.now() - connectStarted) / 1000).toFixed(1)} s`);
    await sleep(2000);

    log(`idle admin API: ${API_SAMPLES} requests per endpoint`);
    const idle = await apiLatencies(api, probe.id, API_SAMPLES);

    const started = Date.now();
    const rollout = await api.call('POST', '/api/v1/rollouts', {
      model: 'counter',
      version: '2.0.0',
      target: { tags: { fleet: 'fanout' } },
      waves: WAVES.map((percent) => ({ percent, bakeSeconds: 0, successPercent: 100 })),
    });
    const createdMs = Date.now() - started;
    // Admin reads while it runs (sequential, like an operator's dashboard that polls hard).
    const during = { devices: [], rollout: [] };
    let running = true;
    const prober = (async () => {
      while (running) {
        during.devices.push(await timed(() => api.call('GET', '/api/v1/devices?limit=100')));
        during.rollout.push(await timed(() => api.call('GET', `/api/v1/rollouts/${rollout.id}`)));
      }
    })();
    let detail = rollout;
    const waveStarts = [];
    await until(
      async () => {
        detail = await api.call('GET', `/api/v1/rollouts/${rollout.id}`);
        for (const w of detail.waves) if (w.startedAt && waveStarts[w.index] === undefined) waveStarts[w.index] = (Date.now() - started) / 1000;
        return detail.finishedAt !== null || detail.state === 'paused';
      },
      1_200_000,
      'rollout finished',
      100,
    );
    const totalSeconds = (Date.now() - started) / 1000;
    running = false;
    await prober;
    const committed = detail.counts.committed ?? 0;
    const db = cp.databaseUrl ? await committedInDatabase(cp.databaseUrl, rollout.id) : null;
    log(`rollout ${detail.state} after ${totalSeconds.toFixed(2)} s: ${JSON.stringify(detail.counts)}`);

    await stopChild(sim, 'SIGTERM');
    log('raw baseline: bare aedes + mqtt.js clients, desired state -> report');
    const raw = await rawBaseline();

    const fleetlinePerSecond = committed / totalSeconds;
    const p99 = (xs) => percentile(xs, 99);
    const api99 = {
      idle: { devices: p99(idle.devices), rollout: p99(idle.rollout) },
      during: { devices: p99(during.devices), rollout: p99(during.rollout) },
      samplesDuring: during.devices.length,
    };
    const factor = { devices: api99.during.devices / api99.idle.devices, rollout: api99.during.rollout / api99.idle.rollout };
    const ratio = fleetlinePerSecond / raw.devicesPerSecond;
    const targets = {
      totalSeconds: { target: `<= ${TARGET_TOTAL_SECONDS} s`, met: totalSeconds <= TARGET_TOTAL_SECONDS },
      ratio: { target: `>= ${TARGET_RATIO}x`, met: ratio >= TARGET_RATIO },
      apiP99: { target: `<= ${TARGET_API_P99_FACTOR}x idle`, met: factor.devices <= TARGET_API_P99_FACTOR && factor.rollout <= TARGET_API_P99_FACTOR },
    };
    Object.assign(result, {
      fleetline: {
        createMs: createdMs,
        totalSeconds,
        waveStartedAfterSeconds: waveStarts,
        // Per wave, seconds after the POST: started, success condition met (then bake 0), as the server recorded them.
        waveTimeline: detail.waves.map((w) => ({
          size: w.size,
          startedAfter: w.startedAt ? (Date.parse(w.startedAt) - started) / 1000 : null,
          succeededAfter: w.successSince ? (Date.parse(w.successSince) - started) / 1000 : null,
        })),
        state: detail.state,
        counts: detail.counts,
        committedInDatabase: db,
        devicesPerSecond: fleetlinePerSecond,
      },
      raw,
      ratio,
      adminApiP99Ms: api99,
      adminApiP99Factor: factor,
      targets,
    });
    const f = (n, d = 1) => (n === null || n === undefined ? '-' : n.toFixed(d));
    const lines = [
      ['', 'Fleetline', 'raw (bare aedes + mqtt.js)', 'ratio / target'],
      [
        `devices/s (${committed} / ${DEVICES} committed)`,
        f(fleetlinePerSecond),
        f(raw.devicesPerSecond),
        `${f(ratio, 2)}x (>= ${TARGET_RATIO}x ${targets.ratio.met ? 'met' : 'MISSED'})`,
      ],
      [
        'total time',
        `${f(totalSeconds, 2)} s (4 waves, create ${createdMs} ms)`,
        `${f(raw.seconds, 2)} s`,
        `<= ${TARGET_TOTAL_SECONDS} s ${targets.totalSeconds.met ? 'met' : 'MISSED'}`,
      ],
      ['waves started after (s)', result.fleetline.waveTimeline.map((w) => f(w.startedAfter, 2)).join(' / '), '-', ''],
      ['waves succeeded after (s)', result.fleetline.waveTimeline.map((w) => f(w.succeededAfter, 2)).join(' / '), '-', ''],
      [
        'p99 GET /devices?limit=100 idle / during',
        `${f(api99.idle.devices)} / ${f(api99.during.devices)} ms`,
        '-',
        `${f(factor.devices, 2)}x (<= ${TARGET_API_P99_FACTOR}x)`,
      ],
      [
        'p99 GET /rollouts/{id} idle / during',
        `${f(api99.idle.rollout)} / ${f(api99.during.rollout)} ms`,
        '-',
        `${f(factor.rollout, 2)}x (<= ${TARGET_API_P99_FACTOR}x) ${targets.apiP99.met ? 'met' : 'MISSED'}`,
      ],
    ];
    const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
    process.stdout.write(
      `\nRollout fan-out, ${DEVICES} devices, waves ${WAVES.join('/')} %, bake 0, tick ${TICK_SECONDS} s, ${cp.database}\n\n${lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}\n\n`,
    );
    writeResult('rollout-fanout', result);
  } finally {
    if (sim && sim.exitCode === null) await stopChild(sim, 'SIGKILL');
    await cp.stop();
  }
}

/** Committed members as PostgreSQL has them (not the API's view of it). */
async function committedInDatabase(url, rolloutId) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT count(*) FILTER (WHERE state = 'committed')::int AS committed, count(*)::int AS members FROM rollout_devices WHERE rollout_id = $1`,
      [rolloutId],
    );
    return rows[0];
  } finally {
    await client.end();
  }
}
