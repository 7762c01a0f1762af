// Shared pieces of the clustered benchmarks: control-plane replicas (embedded aedes each, one
// PostgreSQL, routed through Redis) as child processes that can be SIGKILLed and restarted on the
// same ports, bare aedes processes on the same layout, decile timing of a connecting fleet, and
// cleanup of what a run made in Redis.
import { fork, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { cleanEnv, log, procMemory, root } from './agent-bench-util.mjs';
import { freePort, until, waitForReady } from './bench-util.mjs';

/** A sleep that does not keep the process alive (for the losing side of a Promise.race). */
export function idle(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Rejects after `ms` unless `promise` settles first; the timer never outlives the race. */
export async function within(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const children = new Set();
/** Child processes this benchmark started; SIGKILLed when it exits, however it exits. */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/**
 * SIGINT/SIGTERM: runs `cleanup` once (bounded), then exits 130; the exit hook kills whatever is left.
 */
export function cleanupOnSignal(cleanup) {
  let running = false;
  const onSignal = (signal) => {
    if (running) return;
    running = true;
    log(`${signal}: cleaning up`);
    void within(cleanup(), 60_000, 'cleanup')
      .catch((err) => log(`cleanup: ${err.message}`))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/**
 * `count` replicas of apps/control-plane/dist/main.js. Each has its own HTTP and MQTT port (kept
 * across restarts) and gets the whole list of broker URLs as MQTT_PUBLIC_URL, so devices spread
 * over all of them and rotate on failure.
 */
export async function createReplicas({ count, databaseUrl, redisUrl, adminKey, dataDir, env = {} }) {
  const ports = [];
  for (let i = 0; i < count; i++) ports.push({ http: await freePort(), mqtt: await freePort() });
  const brokerUrls = ports.map((p) => `mqtt://127.0.0.1:${p.mqtt}`);
  const replicas = ports.map((p, i) => {
    const replica = {
      id: `bench-r${i}`,
      httpPort: p.http,
      mqttPort: p.mqtt,
      baseUrl: `http://127.0.0.1:${p.http}`,
      child: undefined,
      output: '',
      start() {
        const child = spawn(process.execPath, [join(root, 'apps/control-plane/dist/main.js')], {
          env: cleanEnv({
            DATABASE_URL: databaseUrl,
            REDIS_URL: redisUrl,
            REPLICA_ID: replica.id,
            PORT: String(p.http),
            HOST: '127.0.0.1',
            MQTT_PORT: String(p.mqtt),
            MQTT_PUBLIC_URL: brokerUrls.join(','),
            PUBLIC_URL: replica.baseUrl,
            DATA_DIR: dataDir, // shared: artifacts uploaded through one replica are served by all
            FLEET_ADMIN_KEY: adminKey,
            LOG_LEVEL: 'warn',
            ENROLL_RATE_PER_SECOND: '0', // the whole simulated fleet enrolls from one address
            ROLLOUT_TICK_SECONDS: '1',
            // Every replica's pool counts against PostgreSQL's max_connections (100 here).
            DATABASE_POOL_SIZE: String(Math.max(2, Math.floor(80 / ports.length) - 1)),
            ...env,
          }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const keep = (d) => {
          replica.output += d.toString();
          if (replica.output.length > 100_000) replica.output = replica.output.slice(-50_000);
        };
        child.stdout.on('data', keep);
        child.stderr.on('data', keep);
        replica.child = track(child);
        return child;
      },
      async ready(timeoutMs = 120_000) {
        try {
          await waitForReady(replica.child, replica.baseUrl, timeoutMs, `replica ${replica.id} /readyz`);
        } catch (err) {
          throw new Error(`${err.message}\n--- ${replica.id} output ---\n${replica.output.slice(-4000)}`, { cause: err });
        }
      },
      rss() {
        return replica.child && replica.child.exitCode === null ? (procMemory(replica.child.pid).rss ?? 0) : 0;
      },
      kill(signal = 'SIGKILL') {
        const child = replica.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill(signal);
        return Promise.race([exited, idle(20_000).then(() => child.kill('SIGKILL'))]);
      },
    };
    return replica;
  });
  return { replicas, brokerUrls };
}

/** Starts the first replica alone (it runs the migrations), then the others at once. */
export async function startReplicas(replicas) {
  const t = Date.now();
  replicas[0].start();
  await replicas[0].ready();
  for (const r of replicas.slice(1)) r.start();
  await Promise.all(replicas.slice(1).map((r) => r.ready()));
  log(`${replicas.length} replicas ready in ${Date.now() - t} ms`);
}

export async function stopReplicas(replicas, signal = 'SIGTERM') {
  await Promise.all(replicas.map((r) => r.kill(signal)));
}

/** `count` bare aedes processes (test/bench/helpers/bare-broker.mjs) on the given ports. */
export function createBareBrokers(ports) {
  return ports.map((port) => {
    const broker = {
      port,
      child: undefined,
      async start() {
        const child = fork(join(root, 'test/bench/helpers/bare-broker.mjs'), ['fleet/v1/devices/+/presence', String(port)], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          env: cleanEnv(),
        });
        broker.child = track(child);
        await Promise.race([
          new Promise((resolve) => child.on('message', (m) => m?.ready && resolve())),
          new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`bare broker on ${port} exited with ${code}`)))),
        ]);
      },
      rss() {
        return broker.child && broker.child.exitCode === null ? (procMemory(broker.child.pid).rss ?? 0) : 0;
      },
      kill(signal = 'SIGKILL') {
        const child = broker.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill(signal);
        return Promise.race([exited, idle(10_000)]);
      },
    };
    return broker;
  });
}

/**
 * Polls `connected()` every `everyMs` until it reaches `total` (or the timeout), and records when
 * each tenth of `total` was first reached, interpolated linearly between the two polls around it
 * (a tenth of a small fleet can pass within one poll). Returns per-decile rates (devices/s), the
 * last-tenth / first-tenth ratio and the total time.
 */
export async function timeDeciles(connected, total, { timeoutMs, everyMs = 250, what = 'connections', progress } = {}) {
  const started = Date.now();
  const marks = [];
  let last = 0;
  let prev = { t: 0, n: 0 };
  let lastLog = 0;
  await until(
    async () => {
      last = await connected();
      const t = (Date.now() - started) / 1000;
      while (marks.length < 10 && last >= Math.ceil(((marks.length + 1) * total) / 10)) {
        const threshold = ((marks.length + 1) * total) / 10;
        const at = last > prev.n ? prev.t + ((threshold - prev.n) / (last - prev.n)) * (t - prev.t) : t;
        marks.push(Math.max(at, marks.at(-1) ?? 0));
      }
      prev = { t, n: last };
      if (progress && Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        progress(last);
      }
      return last >= total;
    },
    timeoutMs,
    `${what}: ${total} (last seen ${last})`,
    everyMs,
  );
  const seconds = (Date.now() - started) / 1000;
  const tenth = total / 10;
  const rates = marks.map((t, i) => Number((tenth / Math.max(t - (i === 0 ? 0 : marks[i - 1]), 0.001)).toFixed(1)));
  return {
    seconds,
    marks,
    rates,
    overall: Number((total / seconds).toFixed(1)),
    firstVsLast: rates.length === 10 ? Number((rates[9] / rates[0]).toFixed(2)) : null,
  };
}

/** One query on a fresh connection (the benchmark's own reads; never on a hot path). */
export async function queryOne(databaseUrl, sql, params = []) {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows[0];
  } finally {
    await c.end();
  }
}

/**
 * Redis URL for the run on its own logical database (keys only; pub/sub channels are global, and
 * the run's device ids are unique), and a cleanup that deletes only the `fleetline:*` keys there.
 */
export function benchRedis(baseUrl, db) {
  const url = new URL(baseUrl);
  url.pathname = `/${db}`;
  return {
    url: url.toString(),
    async cleanup() {
      const redis = new Redis(url.toString(), { lazyConnect: true, maxRetriesPerRequest: 2 });
      try {
        await redis.connect();
        let cursor = '0';
        let deleted = 0;
        for (let rounds = 0; rounds < 100_000; rounds++) {
          const [next, keys] = await redis.scan(cursor, 'MATCH', 'fleetline:*', 'COUNT', 1000);
          if (keys.length > 0) deleted += await redis.del(...keys);
          cursor = next;
          if (cursor === '0') break;
        }
        return deleted;
      } finally {
        redis.disconnect();
      }
    },
  };
}

/** Direct children of a process (from /proc; empty when it has none or exited). */
export function childPids(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/**
 * CPU use per group of this process's children over a phase: `start()` then `stop()` gives, per
 * group, CPU seconds and the share of one core over the phase's wall time. Groups are matched on
 * the child's command line (a process started during the phase counts from zero).
 */
export function cpuMeter(groups) {
  const sample = () => {
    const out = {};
    for (const pid of childPids(process.pid)) {
      const line = cmdline(pid);
      const group = Object.keys(groups).find((g) => line.includes(groups[g]));
      if (group) out[pid] = { group, cpu: cpuSeconds(pid) };
    }
    return out;
  };
  let before = {};
  let startedAt = 0;
  return {
    start() {
      before = sample();
      startedAt = Date.now();
    },
    stop() {
      const after = sample();
      const wall = (Date.now() - startedAt) / 1000;
      const result = { wallSeconds: wall };
      for (const g of Object.keys(groups)) result[g] = { cpuSeconds: 0, cores: 0 };
      for (const [pid, { group, cpu }] of Object.entries(after)) result[group].cpuSeconds += cpu - (before[pid]?.cpu ?? 0);
      for (const g of Object.keys(groups)) {
        result[g].cpuSeconds = Number(result[g].cpuSeconds.toFixed(1));
        result[g].cores = Number((result[g].cpuSeconds / Math.max(wall, 0.001)).toFixed(2));
      }
      return result;
    },
  };
}
