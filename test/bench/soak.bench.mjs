#!/usr/bin/env node
// Soak: a control plane (embedded broker, PGlite, or PostgreSQL with DATABASE_URL) and 1,000 simulated
// devices (`fleet-agent simulate`) running for an hour, with telemetry every 10 s and a one-wave rollout
// back and forth between two versions every SOAK_ROLLOUT_EVERY seconds, so every path a day of
// operation takes (connect, hello, desired state, downloads, reports, telemetry, rollups, gates'
// queries, the rollout engine) runs thousands of times. It samples the RSS of the control plane and
// of the simulator every 30 s and checks that memory is flat: after a warm-up (the first sixth of the
// run), the mean of the last quarter of the samples is within SOAK_FLAT_PERCENT of the mean of the
// first quarter. Heap-only growth is reported as well (the control plane's V8 heap, from /metrics).
// Run after `npm run build`:  node test/bench/soak.bench.mjs
// Env: SOAK_MINUTES (60), SOAK_DEVICES (1000), SOAK_ROLLOUT_EVERY (s, 300), SOAK_FLAT_PERCENT (10), DATABASE_URL.
// Exit code 1 when memory is not flat, a rollout did not complete, or a device is missing at the end.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  adminApi,
  agentMain,
  cleanEnv,
  log,
  mb,
  procMemory,
  sleep,
  startControlPlane,
  stopChild,
  treeRss,
  until,
  writeResult,
} from './helpers/agent-bench-util.mjs';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 60);
const DEVICES = Number(process.env.SOAK_DEVICES ?? 1000);
const ROLLOUT_EVERY_MS = Number(process.env.SOAK_ROLLOUT_EVERY ?? 300) * 1000;
const FLAT_PERCENT = Number(process.env.SOAK_FLAT_PERCENT ?? 10);
const SAMPLE_MS = 30_000;
for (const [name, v] of Object.entries({ MINUTES, DEVICES, ROLLOUT_EVERY_MS, FLAT_PERCENT }))
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Flatness over the samples after warm-up: last quarter's mean against the first quarter's. */
export function flatness(samples) {
  const steady = samples.slice(Math.floor(samples.length / 6));
  const q = Math.max(1, Math.floor(steady.length / 4));
  const first = mean(steady.slice(0, q));
  const last = mean(steady.slice(-q));
  return { firstQuarterMean: Math.round(first), lastQuarterMean: Math.round(last), growthPercent: Number((((last - first) / first) * 100).toFixed(1)) };
}

async function heapUsed(baseUrl) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes (\S+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

const cp = await startControlPlane({ LOG_LEVEL: 'error' });
const api = adminApi(cp.baseUrl, cp.adminKey);
let sim;
let simErr = '';
const result = { at: new Date().toISOString(), node: process.version, minutes: MINUTES, devices: DEVICES, database: cp.database, rollouts: [] };
let exitCode = 0;
try {
  await api.createModel('counter');
  for (const v of ['1.0.0', '2.0.0']) await api.upload('counter', v, 'counter.bin', randomBytes(32 * 1024), { runtime: 'simulated' });
  const token = await api.token('soak', { fleet: 'soak' });
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
      '2',
      '--telemetry-interval',
      '10',
      '--id-prefix',
      'soak',
    ],
    { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  sim.stderr.on('data', (d) => (simErr = (simErr + d.toString()).slice(-20_000)));
  await until(async () => (await api.summary()).devices.online >= DEVICES, 300_000, `${DEVICES} devices online`, 1000);
  log(`${DEVICES} devices online; soaking for ${MINUTES} min`);

  const samples = [];
  const started = Date.now();
  const end = started + MINUTES * 60_000;
  let nextRollout = Date.now();
  let nextSample = Date.now();
  let version = '1.0.0';
  let rollout = null;
  while (Date.now() < end) {
    if (sim.exitCode !== null) throw new Error(`simulator exited with ${sim.exitCode}:\n${simErr.slice(-3000)}`);
    if (Date.now() >= nextSample) {
      nextSample += SAMPLE_MS;
      const s = {
        t: Math.round((Date.now() - started) / 1000),
        cpRss: procMemory(cp.child.pid).rss,
        cpHeap: await heapUsed(cp.baseUrl),
        simRss: treeRss(sim.pid),
      };
      samples.push(s);
      log(`t=${s.t}s control plane ${mb(s.cpRss)} MB (heap ${mb(s.cpHeap)} MB), simulator ${mb(s.simRss)} MB`);
    }
    if (rollout) {
      const r = await api.call('GET', `/api/v1/rollouts/${rollout.id}`);
      if (r.finishedAt !== null) {
        result.rollouts.push({ version: r.version, state: r.state, seconds: (Date.parse(r.finishedAt) - Date.parse(r.createdAt)) / 1000, counts: r.counts });
        log(`rollout to ${r.version} ${r.state} ${JSON.stringify(r.counts)}`);
        if (r.state !== 'completed') exitCode = 1;
        rollout = null;
      }
    } else if (Date.now() >= nextRollout) {
      nextRollout += ROLLOUT_EVERY_MS;
      rollout = await api.call('POST', '/api/v1/rollouts', { model: 'counter', version, target: { tags: { fleet: 'soak' } }, waves: [{ percent: 100 }] });
      version = version === '1.0.0' ? '2.0.0' : '1.0.0';
    }
    await sleep(1000);
  }
  const online = (await api.summary()).devices.online;
  Object.assign(result, {
    samples,
    controlPlaneRss: flatness(samples.map((s) => s.cpRss)),
    controlPlaneHeap: flatness(samples.map((s) => s.cpHeap ?? 0)),
    simulatorRss: flatness(samples.map((s) => s.simRss)),
    onlineAtEnd: online,
  });
  const flat = result.controlPlaneRss.growthPercent <= FLAT_PERCENT && result.controlPlaneHeap.growthPercent <= FLAT_PERCENT;
  result.flat = flat;
  if (!flat || online < DEVICES) exitCode = 1;
  console.log(
    `Soak: ${MINUTES} min, ${DEVICES} devices, ${result.rollouts.length} rollouts (${result.rollouts.filter((r) => r.state === 'completed').length} completed), ${online} online at the end`,
  );
  for (const [name, f] of Object.entries({
    'control-plane RSS': result.controlPlaneRss,
    'control-plane heap': result.controlPlaneHeap,
    'simulator RSS': result.simulatorRss,
  }))
    console.log(
      `${name.padEnd(20)} first quarter ${mb(f.firstQuarterMean)} MB -> last quarter ${mb(f.lastQuarterMean)} MB (${f.growthPercent >= 0 ? '+' : ''}${f.growthPercent} %)`,
    );
  console.log(`memory flat within ${FLAT_PERCENT} %: ${flat ? 'yes' : 'NO'}`);
  writeResult('soak', result);
} catch (err) {
  exitCode = 1;
  log(`soak failed: ${err instanceof Error ? err.stack : String(err)}`);
} finally {
  if (sim) await stopChild(sim);
  await cp.stop();
}
process.exit(exitCode);
