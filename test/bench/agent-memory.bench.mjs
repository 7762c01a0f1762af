#!/usr/bin/env node
// Device agent memory benchmark: the real `fleet-agent run` process, enrolled with a control
// plane, connected and idle with one model committed, next to a raw baseline measured in the same
// run on the same machine: a bare Node process holding one mqtt.js connection to the same broker
// (with a device's credentials, subscribed to its desired-state topics, like the agent).
//
// Two agent configurations are measured:
//   agent (onnx)     default config (onnxruntime-node installed: probed and health-checked in a
//                    child process), an ONNX model committed
//   agent (no onnx)  runtimes.onnx.enabled=false, a model for the `command` runtime committed
// Targets: idle RSS <= 1.1x the baseline; then the no-onnx agent updates to a 200 MB model
// (generated here) and its peak RSS during the update (VmHWM, reset through clear_refs first,
// and 100 ms samples) must stay <= 1.5x its idle RSS.
//
// RSS comes from /proc/<pid>/status (VmRSS); the V8 heap from process.memoryUsage(), written once a
// second by a preloaded module (node --import), so the agent code itself is unchanged.
// Run after `npm run build`:  node test/bench/agent-memory.bench.mjs
// Env: BENCH_IDLE_SECONDS (default 20), BENCH_WARMUP_SECONDS (default 30), BENCH_UPDATE_MB (default 200), DATABASE_URL (PostgreSQL instead of PGlite).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, openAsBlob, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { topics } from '@fleetline/protocol';
import {
  adminApi,
  agentMain,
  cleanEnv,
  log,
  mb,
  median,
  procMemory,
  root,
  sleep,
  startControlPlane,
  stopChild,
  until,
  writeResult,
} from './helpers/agent-bench-util.mjs';

const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 20);
// Settling: the agent gives back start-up and update memory once quiet for ≈ 7 s
// (device-agent/src/util/heap-compactor.ts), and glibc and V8 release freed pages lazily after that.
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 30);
const UPDATE_MB = Number(process.env.BENCH_UPDATE_MB ?? 200);
const IDLE_TARGET = 1.1;
const UPDATE_TARGET = 1.5;

/** Random bytes streamed to a file: the bench never holds the artifact in memory either. */
async function writeRandomFile(path, bytes) {
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= 1 << 20) {
    if (!out.write(randomBytes(Math.min(left, 1 << 20)))) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())));
}

const work = await mkdtemp(join(tmpdir(), 'fleetline-agent-memory-'));
const preload = join(work, 'heap-sampler.mjs');
writeFileSync(
  preload,
  `import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
const file = process.env.BENCH_HEAP_FILE;
const spaces = () => Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
if (file) setInterval(() => writeFileSync(file, JSON.stringify({ ...process.memoryUsage(), spaces: spaces() })), 1000).unref();
`,
);

function run(args, extraEnv, label) {
  const heapFile = join(work, `${label.replace(/\W+/g, '-')}.heap.json`);
  const child = spawn(process.execPath, ['--import', preload, ...args], {
    env: cleanEnv({ BENCH_HEAP_FILE: heapFile, ...extraEnv }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  return { label, child, heapFile, output: () => stderr };
}

function heapOf(proc) {
  try {
    return JSON.parse(readFileSync(proc.heapFile, 'utf8'));
  } catch {
    return null;
  }
}

const BASELINE_SOURCE = `
import mqtt from 'mqtt';
const [url, id, secret, desired, commands] = process.argv.slice(2);
const client = await mqtt.connectAsync(url, { clientId: id, username: id, password: secret, protocolVersion: 4, clean: true, keepalive: 60 });
await client.subscribeAsync([desired, commands], { qos: 1 });
process.stderr.write('connected\\n');
setInterval(() => undefined, 1 << 30);
`;

const cp = await startControlPlane();
const api = adminApi(cp.baseUrl, cp.adminKey);
const procs = [];
try {
  const token = await api.token('memory-bench');
  const healthCommand = '/bin/true';
  const onnxFile = join(work, 'tiny.onnx');
  execFileSync(process.execPath, [join(root, 'device-agent/scripts/make-test-model.mjs'), onnxFile]);
  await api.createModel('detector');
  await api.upload('detector', '1.0.0', 'model.onnx', readFileSync(onnxFile), { runtime: 'onnx' });
  await api.createModel('counter');
  await api.upload('counter', '1.0.0', 'weights.bin', randomBytes(256 * 1024), { runtime: 'command' });

  const variants = [
    { label: 'agent (onnx)', id: 'mem-onnx', model: 'detector', env: {} },
    { label: 'agent (no onnx)', id: 'mem-plain', model: 'counter', env: { FLEET_AGENT_ONNX_ENABLED: 'false', FLEET_AGENT_HEALTH_COMMAND: healthCommand } },
  ];
  for (const v of variants) {
    const dataDir = join(work, v.id);
    const env = { FLEET_AGENT_LOCAL_API_TRANSPORT: 'tcp', FLEET_AGENT_LOCAL_API_PORT: '0', ...v.env };
    execFileSync(process.execPath, [agentMain, 'enroll', '--server', cp.baseUrl, '--token', token, '--data-dir', dataDir, '--id', v.id], {
      env: cleanEnv(env),
    });
    const proc = run([agentMain, 'run', '--data-dir', dataDir], env, v.label);
    procs.push(proc);
    await until(async () => (await api.device(v.id)).online, 60_000, `${v.id} online`, 200);
    await api.assign(v.id, v.model, '1.0.0');
    await until(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`${v.label} exited:\n${proc.output()}`);
        const m = (await api.device(v.id)).models.find((x) => x.model === v.model);
        return m?.reportedState === 'committed' && m.activeVersion === '1.0.0';
      },
      60_000,
      `${v.id} committed`,
      200,
    );
    log(`${v.label}: connected, ${v.model}@1.0.0 committed`);
  }

  const baselineCreds = await api.call('POST', '/api/v1/devices', { id: 'mem-baseline' });
  const baselineScript = join(root, 'test/bench/.agent-memory-baseline.tmp.mjs');
  writeFileSync(baselineScript, BASELINE_SOURCE);
  const baseline = run(
    [baselineScript, cp.mqttUrl, 'mem-baseline', baselineCreds.secret, topics.desiredAll('mem-baseline'), topics.commands('mem-baseline')],
    {},
    'bare node + mqtt.js',
  );
  procs.push(baseline);
  try {
    await until(
      () => {
        if (baseline.child.exitCode !== null) throw new Error(`baseline exited:\n${baseline.output()}`);
        return baseline.output().includes('connected');
      },
      30_000,
      'baseline connected',
      100,
    );
  } finally {
    await rm(baselineScript, { force: true });
  }

  log(`idle: ${WARMUP_SECONDS} s warm-up, then sampling for ${IDLE_SECONDS} s`);
  await sleep(WARMUP_SECONDS * 1000);
  const samples = new Map(procs.map((p) => [p.label, []]));
  for (let s = 0; s < IDLE_SECONDS; s++) {
    for (const p of procs) {
      if (p.child.exitCode !== null) throw new Error(`${p.label} exited during the idle phase:\n${p.output()}`);
      samples.get(p.label).push({ ...procMemory(p.child.pid), heap: heapOf(p) });
    }
    await sleep(1000);
  }

  // Update phase: the no-onnx agent goes to a UPDATE_MB model while its RSS is watched.
  const updating = procs.find((p) => p.label === 'agent (no onnx)');
  const bigFile = join(work, 'big.bin');
  await writeRandomFile(bigFile, UPDATE_MB * 1024 * 1024);
  await api.upload('counter', '2.0.0', 'weights.bin', await openAsBlob(bigFile), { runtime: 'command' });
  await rm(bigFile, { force: true });
  // Linux: writing 5 to clear_refs resets VmHWM, so the peak below is the update's alone.
  writeFileSync(`/proc/${updating.child.pid}/clear_refs`, '5');
  const updateSamples = [];
  const updateStarted = Date.now();
  await api.assign('mem-plain', 'counter', '2.0.0');
  let committed = false;
  while (!committed) {
    if (updating.child.exitCode !== null) throw new Error(`${updating.label} exited during the update:\n${updating.output()}`);
    if (Date.now() - updateStarted > 600_000) throw new Error('update to the large model did not commit within 10 minutes');
    updateSamples.push(procMemory(updating.child.pid));
    if (updateSamples.length % 5 === 0) {
      const m = (await api.device('mem-plain')).models.find((x) => x.model === 'counter');
      committed = m?.reportedState === 'committed' && m.activeVersion === '2.0.0';
    }
    await sleep(100);
  }
  const updateSeconds = (Date.now() - updateStarted) / 1000;
  const updatePeakBytes = Math.max(procMemory(updating.child.pid).hwm, ...updateSamples.map((x) => x.rss));
  log(`update to ${UPDATE_MB} MB committed in ${updateSeconds.toFixed(1)} s`);

  const rows = procs.map((p) => {
    const list = samples.get(p.label);
    const last = list[list.length - 1];
    return {
      process: p.label,
      rssMedianBytes: median(list.map((x) => x.rss)),
      rssMaxBytes: Math.max(...list.map((x) => x.rss)),
      peakRssBytes: last.hwm,
      rssAnonBytes: last.rssAnon,
      heapUsedMedianBytes: median(list.map((x) => x.heap?.heapUsed ?? 0)),
      heapTotalBytes: last.heap?.heapTotal ?? null,
      externalBytes: last.heap?.external ?? null,
      heapSpaceBytes: last.heap?.spaces ?? null,
    };
  });
  const base = rows.find((r) => r.process === baseline.label);
  for (const r of rows) {
    r.rssRatio = Number((r.rssMedianBytes / base.rssMedianBytes).toFixed(2));
    r.heapRatio = Number((r.heapUsedMedianBytes / base.heapUsedMedianBytes).toFixed(2));
  }

  const header = [
    'process',
    'RSS median MB',
    'RSS max MB',
    'peak RSS MB',
    'anon MB',
    'heap used MB',
    'heap total MB',
    'external MB',
    'RSS ratio',
    'heap ratio',
  ];
  const table = [
    header,
    ...rows.map((r) => [
      r.process,
      mb(r.rssMedianBytes),
      mb(r.rssMaxBytes),
      mb(r.peakRssBytes),
      mb(r.rssAnonBytes),
      mb(r.heapUsedMedianBytes),
      mb(r.heapTotalBytes),
      mb(r.externalBytes),
      `${r.rssRatio}x`,
      `${r.heapRatio}x`,
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => String(row[i]).length)));
  const out = table.map((row) => row.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')).join('\n');
  process.stdout.write(`\nDevice agent memory, idle ${IDLE_SECONDS} s (connected, one model committed), ${cp.database}\n\n${out}\n\n`);
  process.stdout.write(`ratios are against the bare Node process holding one mqtt.js connection\n`);
  const verdict = (ok) => (ok ? 'met' : 'NOT met');
  const idleIn = updating && rows.find((r) => r.process === updating.label);
  const updateRatio = Number((updatePeakBytes / idleIn.rssMedianBytes).toFixed(2));
  const targets = [
    ...rows
      .filter((r) => r.process !== baseline.label)
      .map((r) => ({ measure: `${r.process} idle RSS / baseline`, value: r.rssRatio, target: IDLE_TARGET, met: r.rssRatio <= IDLE_TARGET })),
    {
      measure: `${updating.label} peak RSS during a ${UPDATE_MB} MB update / its idle RSS`,
      value: updateRatio,
      target: UPDATE_TARGET,
      met: updateRatio <= UPDATE_TARGET,
    },
  ];
  process.stdout.write(
    `\nupdate to a ${UPDATE_MB} MB model: committed in ${updateSeconds.toFixed(1)} s, peak RSS ${mb(updatePeakBytes)} MB (idle ${mb(idleIn.rssMedianBytes)} MB)\n\n`,
  );
  for (const t of targets) process.stdout.write(`${t.measure}: ${t.value}x (target <= ${t.target}x): ${verdict(t.met)}\n`);
  writeResult('agent-memory', {
    at: new Date().toISOString(),
    node: process.version,
    idleSeconds: IDLE_SECONDS,
    database: cp.database,
    rows,
    update: { megabytes: UPDATE_MB, seconds: updateSeconds, peakRssBytes: updatePeakBytes, idleRssBytes: idleIn.rssMedianBytes, ratio: updateRatio },
    targets,
    samples: Object.fromEntries(samples),
  });
} finally {
  for (const p of procs) await stopChild(p.child);
  await cp.stop();
  await rm(work, { recursive: true, force: true });
}
