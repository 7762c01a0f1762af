#!/usr/bin/env node
// Simulator memory per device: `startSimulationInProcess` (every device a real `Agent`) against a
// stand-in peer in another process (aedes accepting everyone + an enrollment endpoint), so only
// the simulator's memory is measured. For each fleet size (fresh process each): heap and RSS after
// start-up (0 devices), with every device connected, and after every device committed one
// assignment (download skipped) with inference traffic and telemetry running. Reports bytes per
// device = (with devices - empty) / devices, after a full GC (and, after the rollout, also as the
// process holds it without a forced GC).
// Run after `npm run build`:  node test/bench/simulator-memory.bench.mjs
// Env: BENCH_SIM_SIZES (default "1000,5000"), BENCH_HEAP_SNAPSHOT=1 (writes a .heapsnapshot per size),
//      BENCH_NODE_FLAGS (extra flags for the simulator process).
import { fork } from 'node:child_process';
import { writeHeapSnapshot } from 'node:v8';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { log, mb, resultsDir, root, sleep, until, writeResult } from './helpers/agent-bench-util.mjs';

const SIZES = (process.env.BENCH_SIM_SIZES ?? '1000,5000')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const self = fileURLToPath(import.meta.url);
// Extra V8/Node flags for the measuring process (e.g. to compare heap settings).
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);

function memory() {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

async function measure(devices) {
  const { startSimulationInProcess } = await import(pathToFileURL(join(root, 'device-agent/dist/simulator/simulation.js')).href);
  const peer = await new Promise((resolve) => process.once('message', resolve));
  const ask = (msg, key) =>
    new Promise((resolve) => {
      const on = (m) => {
        if (m && typeof m === 'object' && key in m) {
          process.off('message', on);
          resolve(m[key]);
        }
      };
      process.on('message', on);
      process.send(msg);
    });
  await sleep(500);
  const empty = memory();
  const sim = startSimulationInProcess({
    server: `http://127.0.0.1:${peer.httpPort}`,
    token: 'memory-bench-token-0123',
    devices,
    idPrefix: 'mem',
    telemetryIntervalSeconds: 10,
    download: 'skip',
    enrollConcurrency: 100,
    sourceAddresses: Math.max(1, Math.ceil(devices / 20_000)),
  });
  const started = Date.now();
  await sim.ready;
  await until(() => sim.stats().connected === devices, 300_000, `${devices} devices connected`, 100);
  const connectSeconds = (Date.now() - started) / 1000;
  await sleep(2000);
  const connected = memory();
  await ask({ assign: { model: 'counter', version: '2.0.0', revision: 1 } }, 'assigned');
  await until(() => (sim.stats().active.counter?.['2.0.0'] ?? 0) === devices, 300_000, 'every device committed', 100);
  // Two telemetry intervals: aggregates, outboxes and traffic state at their steady size.
  await sleep(21_000);
  // What the process really holds as it runs (V8 keeps heap it grew into until it decides to shrink).
  const committedRssNoGc = process.memoryUsage().rss;
  const committed = memory();
  const stats = sim.stats();
  if (process.env.BENCH_HEAP_SNAPSHOT === '1') writeHeapSnapshot(join(resultsDir, `simulator-memory-${devices}.heapsnapshot`));
  await sim.stop();
  const per = (m) => ({ rss: Math.round((m.rss - empty.rss) / devices), heapUsed: Math.round((m.heapUsed - empty.heapUsed) / devices) });
  process.send({
    result: {
      devices,
      connectSeconds,
      empty,
      connected,
      committed,
      perDevice: { connected: per(connected), committed: per(committed), committedRssNoGc: Math.round((committedRssNoGc - empty.rss) / devices) },
      telemetryMessages: stats.telemetryMessages,
      inferences: stats.inferences,
    },
  });
}

async function runSize(devices) {
  const peer = fork(join(root, 'test/bench/helpers/stub-peer.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ports = await new Promise((resolve) => peer.on('message', (m) => m.ready && resolve(m)));
  const child = fork(self, ['--measure', String(devices)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc', ...NODE_FLAGS] });
  try {
    // Relay the assignment request from the simulator to the peer and the answer back.
    child.on('message', (m) => m && typeof m === 'object' && m.assign && peer.send(m));
    peer.on('message', (m) => m && typeof m === 'object' && 'assigned' in m && child.send(m));
    child.send(ports);
    let timer;
    const result = await Promise.race([
      new Promise((resolve) => child.on('message', (m) => m && m.result && resolve(m.result))),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`measuring process exited with ${code}`)))),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${devices} devices: timed out`)), 900_000))),
    ]).finally(() => clearTimeout(timer));
    return result;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    peer.send('stop');
    await Promise.race([new Promise((r) => peer.once('exit', r)), sleep(10_000)]);
    if (peer.exitCode === null) peer.kill('SIGKILL');
  }
}

if (process.argv[2] === '--measure') {
  await measure(Number(process.argv[3]));
  process.exit(0);
} else {
  const results = [];
  for (const n of SIZES) {
    log(`${n} devices`);
    const r = await runSize(n);
    log(
      `${n} devices: connected in ${r.connectSeconds.toFixed(1)} s; per device connected ${r.perDevice.connected.heapUsed} B heap / ${r.perDevice.connected.rss} B RSS; ` +
        `committed ${r.perDevice.committed.heapUsed} B heap / ${r.perDevice.committed.rss} B RSS`,
    );
    results.push(r);
  }
  const lines = [
    [
      'devices',
      'heap/device connected',
      'RSS/device connected',
      'heap/device committed',
      'RSS/device committed',
      'RSS/device before GC',
      'RSS total committed',
    ],
    ...results.map((r) => [
      String(r.devices),
      `${r.perDevice.connected.heapUsed} B`,
      `${r.perDevice.connected.rss} B`,
      `${r.perDevice.committed.heapUsed} B`,
      `${r.perDevice.committed.rss} B`,
      `${r.perDevice.committedRssNoGc} B`,
      `${mb(r.committed.rss)} MB`,
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  process.stdout.write(
    `\nSimulator memory per device (real Agent per device)\n\n${lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}\n\n`,
  );
  writeResult('simulator-memory', { at: new Date().toISOString(), node: process.version, results });
}
