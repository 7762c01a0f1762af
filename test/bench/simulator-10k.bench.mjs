#!/usr/bin/env node
// Fleet simulator benchmark: 10,000 simulated devices (`fleet-agent simulate --devices 10000
// --workers 4`, sockets spread over 127.0.0.x) against the built control plane with its embedded
// broker (PGlite, or PostgreSQL with DATABASE_URL). It measures
//   connect: simulator start -> all devices online in GET /api/v1/fleet/summary (enroll + MQTT)
//   update:  one-wave rollout (100 %) created -> every device committed (downloads included)
//   control-plane RSS while connected and during the update
// and, in the same run, a raw baseline with the same worker layout: a bare aedes broker (no auth,
// no ACL, no database) accepting 10,000 mqtt.js connections that subscribe to their desired topics.
// Run after `npm run build`:  node test/bench/simulator-10k.bench.mjs
// Env: BENCH_DEVICES (default 10000), BENCH_WORKERS (default 4), BENCH_SOURCE_ADDRESSES (default 4),
//      DATABASE_URL.
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { topics } from '@fleetline/protocol';
import {
  adminApi,
  agentMain,
  cleanEnv,
  log,
  mb,
  procMemory,
  root,
  sleep,
  startControlPlane,
  stopChild,
  treeRss,
  until,
  writeResult,
} from './helpers/agent-bench-util.mjs';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 10_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const SOURCE_ADDRESSES = Number(process.env.BENCH_SOURCE_ADDRESSES ?? 4);
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Baseline worker (forked by this script): `count` mqtt.js clients from index `offset`.
if (process.argv[2] === '--baseline-worker') {
  const [, , , port, offset, count] = process.argv;
  const clients = [];
  let next = 0;
  let connected = 0;
  const connectOne = (i) =>
    new Promise((resolve, reject) => {
      const id = `raw-${String(Number(offset) + i).padStart(6, '0')}`;
      const localAddress = `127.0.0.${1 + ((Number(offset) + i) % SOURCE_ADDRESSES)}`;
      const client = new mqtt.MqttClient(() => createConnection({ host: '127.0.0.1', port: Number(port), localAddress }), {
        protocolVersion: 4,
        clientId: id,
        clean: true, // as the agent does: the broker keeps no session
        keepalive: 60,
        reconnectPeriod: 1000,
        connectTimeout: 60_000,
      });
      client.once('connect', () => {
        client.subscribe(topics.desiredAll(id), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
      });
      client.on('error', () => undefined); // reconnects
      clients.push(client);
    });
  // Same bound as the simulator's enrollment/connect pool.
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < Number(count)) {
        await connectOne(next++);
        connected++;
      }
    }),
  );
  process.send({ connected });
  process.on('message', (m) => {
    if (m === 'stop') {
      for (const c of clients) c.end(true);
      process.exit(0);
    }
  });
} else {
  await main();
}

async function rawBaseline() {
  const broker = fork(join(root, 'test/bench/helpers/bare-broker.mjs'), ['fleet/v1/devices/+/reported'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve) => broker.on('message', (m) => m.ready && resolve(m.port)));
  const started = Date.now();
  const perWorker = Math.ceil(DEVICES / WORKERS);
  const workers = [];
  const done = [];
  for (let w = 0; w < WORKERS; w++) {
    const count = Math.max(0, Math.min(perWorker, DEVICES - w * perWorker));
    const child = fork(self, ['--baseline-worker', String(port), String(w * perWorker), String(count)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: cleanEnv(),
    });
    workers.push(child);
    done.push(new Promise((resolve) => child.once('message', resolve)));
  }
  let peakBroker = 0;
  let peakClients = 0;
  const sampler = setInterval(() => {
    peakBroker = Math.max(peakBroker, procMemory(broker.pid).rss ?? 0);
    peakClients = Math.max(
      peakClients,
      workers.reduce((n, c) => n + (c.exitCode === null ? (procMemory(c.pid).rss ?? 0) : 0), 0),
    );
  }, 500);
  await Promise.all(done);
  const connectSeconds = (Date.now() - started) / 1000;
  await sleep(3000);
  const settledBroker = procMemory(broker.pid).rss;
  clearInterval(sampler);
  const clientsRss = workers.reduce((n, c) => n + (procMemory(c.pid).rss ?? 0), 0);
  for (const c of workers) c.send('stop');
  await Promise.all(workers.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', resolve)))));
  broker.send('stop');
  await Promise.race([new Promise((resolve) => broker.once('exit', resolve)), sleep(10_000)]);
  if (broker.exitCode === null) broker.kill('SIGKILL');
  return { connectSeconds, brokerRssBytes: settledBroker, brokerPeakRssBytes: peakBroker, clientsRssBytes: clientsRss, clientsPeakRssBytes: peakClients };
}

async function main() {
  log(`${DEVICES} devices, ${WORKERS} workers, ${SOURCE_ADDRESSES} source addresses`);
  const cp = await startControlPlane();
  const api = adminApi(cp.baseUrl, cp.adminKey);
  let sim;
  let simOut = '';
  let simErr = '';
  const result = {
    at: new Date().toISOString(),
    node: process.version,
    devices: DEVICES,
    workers: WORKERS,
    sourceAddresses: SOURCE_ADDRESSES,
    database: cp.database,
  };
  try {
    await api.createModel('counter');
    await api.upload('counter', '2.0.0', 'counter.bin', randomBytes(64 * 1024), { runtime: 'simulated' });
    const token = await api.token('sim-10k', { fleet: 'sim10k' });

    const cpRss = { idle: procMemory(cp.child.pid).rss, connectedPeak: 0, connected: 0, updatePeak: 0 };
    let simPeak = 0;
    let phase = 'connect';
    const sampler = setInterval(() => {
      try {
        const rss = procMemory(cp.child.pid).rss ?? 0;
        if (phase === 'connect') cpRss.connectedPeak = Math.max(cpRss.connectedPeak, rss);
        else cpRss.updatePeak = Math.max(cpRss.updatePeak, rss);
        if (sim && sim.exitCode === null) simPeak = Math.max(simPeak, treeRss(sim.pid));
      } catch {
        // a process exited between two samples
      }
    }, 500);

    const started = Date.now();
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
        'sim10k',
      ],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    sim.stdout.on('data', (d) => (simOut += d.toString()));
    sim.stderr.on('data', (d) => {
      simErr += d.toString();
      if (simErr.length > 200_000) simErr = simErr.slice(-100_000);
    });
    let lastLog = 0;
    let online = 0;
    // Progress lines of the simulator: "[Ns] enrolled X/Y (failed F) connected C ...".
    const enrollment = () => {
      const all = [...simErr.matchAll(/enrolled (\d+)\/(\d+) \(failed (\d+)\)/g)];
      const m = all[all.length - 1];
      return m ? { enrolled: Number(m[1]), failed: Number(m[3]) } : { enrolled: 0, failed: 0 };
    };
    let enrolledAt = null;
    await until(
      async () => {
        if (sim.exitCode !== null) throw new Error(`simulator exited with ${sim.exitCode}:\n${simErr.slice(-3000)}`);
        online = (await api.summary()).devices.online;
        const e = enrollment();
        if (enrolledAt === null && e.enrolled + e.failed === DEVICES) enrolledAt = (Date.now() - started) / 1000;
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          log(`[${Math.round((Date.now() - started) / 1000)} s] online ${online}/${DEVICES}; simulator: ${simErr.trim().split('\n').pop()}`);
        }
        // Devices whose enrollment failed for good (retries exhausted) never come online: wait for the rest.
        return e.enrolled + e.failed === DEVICES && online === e.enrolled;
      },
      1_800_000,
      `every enrolled device online`,
      1000,
    );
    const connectSeconds = (Date.now() - started) / 1000;
    const enrollFailed = enrollment().failed;
    log(`all ${online} enrolled devices online after ${connectSeconds.toFixed(1)} s (enrollment done after ${enrolledAt} s, ${enrollFailed} failed)`);
    await sleep(3000);
    cpRss.connected = procMemory(cp.child.pid).rss;

    phase = 'update';
    const updateStarted = Date.now();
    const rollout = await api.call('POST', '/api/v1/rollouts', {
      model: 'counter',
      version: '2.0.0',
      target: { tags: { fleet: 'sim10k' } },
      waves: [{ percent: 100 }],
    });
    log(`rollout ${rollout.id} targets ${rollout.targetCount} devices`);
    let detail = rollout;
    await until(
      async () => {
        detail = await api.call('GET', `/api/v1/rollouts/${rollout.id}`);
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          log(`[update ${Math.round((Date.now() - updateStarted) / 1000)} s] ${detail.state} ${JSON.stringify(detail.counts)}`);
        }
        return detail.finishedAt !== null;
      },
      1_200_000,
      'rollout finished',
      1000,
    );
    const rolloutSeconds = (Date.now() - updateStarted) / 1000;
    const summary = await api.summary();
    const running = summary.models.find((m) => m.model === 'counter')?.versions.find((v) => v.version === '2.0.0')?.devices ?? 0;
    clearInterval(sampler);
    log(`rollout ${detail.state} after ${rolloutSeconds.toFixed(1)} s: ${JSON.stringify(detail.counts)}; ${running} devices run 2.0.0`);

    const exited = new Promise((resolve) => sim.once('exit', resolve));
    sim.kill('SIGTERM');
    await Promise.race([exited, sleep(60_000)]);
    let simSummary = null;
    try {
      simSummary = JSON.parse(simOut);
    } catch {
      simSummary = null;
    }

    log('raw baseline: bare aedes + mqtt.js clients');
    const raw = await rawBaseline();

    Object.assign(result, {
      fleetline: {
        connectSeconds,
        enrollSeconds: enrolledAt,
        online,
        enrollFailed,
        rolloutSeconds,
        rolloutState: detail.state,
        rolloutCounts: detail.counts,
        devicesOnNewVersion: running,
        controlPlaneRssBytes: cpRss,
        simulatorPeakRssBytes: simPeak,
        simulator: simSummary && {
          enrolled: simSummary.enrolled,
          enrollFailed: simSummary.enrollFailed,
          reports: simSummary.reports,
          failures: simSummary.failures,
        },
      },
      raw,
      ratios: {
        connectTime: Number((connectSeconds / raw.connectSeconds).toFixed(2)),
        brokerRss: Number((cpRss.connected / raw.brokerRssBytes).toFixed(2)),
      },
    });

    const lines = [
      ['', 'Fleetline (CP + simulator)', 'raw (bare aedes + mqtt.js)', 'ratio'],
      [
        `time to all online (${online} / ${DEVICES})`,
        `${connectSeconds.toFixed(1)} s (enroll + connect)`,
        `${raw.connectSeconds.toFixed(1)} s (connect + subscribe)`,
        `${result.ratios.connectTime}x`,
      ],
      ['  of which enrollment (HTTP)', `${enrolledAt} s, ${enrollFailed} failed for good`, '-', ''],
      ['update (one-wave rollout, all committed)', `${rolloutSeconds.toFixed(1)} s`, '-', ''],
      ['server RSS, all connected', `${mb(cpRss.connected)} MB`, `${mb(raw.brokerRssBytes)} MB`, `${result.ratios.brokerRss}x`],
      ['server peak RSS (connect / update)', `${mb(cpRss.connectedPeak)} / ${mb(cpRss.updatePeak)} MB`, `${mb(raw.brokerPeakRssBytes)} MB`, ''],
      ['client processes peak RSS', `${mb(simPeak)} MB`, `${mb(raw.clientsPeakRssBytes)} MB`, ''],
      ['server RSS before devices', `${mb(cpRss.idle)} MB`, '-', ''],
    ];
    const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
    process.stdout.write(
      `\nFleet simulator, ${DEVICES} devices, ${WORKERS} workers, ${SOURCE_ADDRESSES} source addresses, ${cp.database}\n\n${lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}\n\n`,
    );
    if (simSummary?.enrollErrors?.length)
      process.stdout.write(`enrollment errors (first ${simSummary.enrollErrors.length}):\n  ${simSummary.enrollErrors.join('\n  ')}\n\n`);
    writeResult('simulator-10k', result);
  } finally {
    if (sim && sim.exitCode === null) await stopChild(sim, 'SIGKILL');
    await cp.stop();
  }
}
