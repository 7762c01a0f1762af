// Shared pieces of the agent benchmarks: the built control plane as a child process, a few admin
// API calls, and memory readings from /proc/<pid>/status.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, scratchDatabase, sleep, until, waitForReady } from './bench-util.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const agentMain = join(root, 'device-agent/dist/cli/main.js');
export const resultsDir = join(root, 'test/bench/results');

export function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Environment for children: without jest/test flags. */
export function cleanEnv(extra = {}) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('FLEET_AGENT_')) delete env[key];
  return { ...env, ...extra };
}

/**
 * Starts apps/control-plane/dist/main.js on free ports: PostgreSQL (a scratch database) when
 * DATABASE_URL is set, otherwise the embedded PGlite. Returns { baseUrl, mqttUrl, adminKey, child, database,
 * databaseUrl (the scratch database's, PostgreSQL only), stop }.
 */
export async function startControlPlane(env = {}) {
  const scratch = process.env.DATABASE_URL ? await scratchDatabase(process.env.DATABASE_URL, 'fleetline_agent_bench_') : undefined;
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-agent-bench-'));
  const adminKey = `flk_bench_${randomBytes(18).toString('base64url')}`;
  const child = spawn(process.execPath, [join(root, 'apps/control-plane/dist/main.js')], {
    env: cleanEnv({
      DATABASE_URL: scratch?.url ?? '',
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      DATA_DIR: dataDir,
      FLEET_ADMIN_KEY: adminKey,
      LOG_LEVEL: 'warn',
      ENROLL_RATE_PER_SECOND: '0', // the whole simulated fleet enrolls from one address
      ROLLOUT_TICK_SECONDS: '0.5',
      ...env,
    }),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  const started = Date.now();
  await waitForReady(child, baseUrl, 120_000, 'control plane /readyz');
  log(`control plane ready in ${Date.now() - started} ms (${scratch ? 'PostgreSQL' : 'PGlite'})`);
  return {
    baseUrl,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    adminKey,
    child,
    database: scratch ? 'postgresql' : 'pglite',
    databaseUrl: scratch?.url,
    async stop() {
      await stopChild(child);
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function stopChild(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await Promise.race([exited, sleep(20_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Admin API client: `call(method, path, body?)` -> parsed JSON; throws on an unexpected status. */
export function adminApi(baseUrl, adminKey) {
  const call = async (method, path, body, expected = [200, 201]) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!expected.includes(res.status)) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : undefined;
  };
  return {
    call,
    token: async (name, tags, deviceTagKeys) =>
      (await call('POST', '/api/v1/enrollment-tokens', { name, unlimited: true, ...(tags ? { tags } : {}), ...(deviceTagKeys ? { deviceTagKeys } : {}) }))
        .token,
    createModel: (name) => call('POST', '/api/v1/models', { name }),
    async upload(model, version, fileName, bytes, metadata) {
      const form = new FormData();
      form.append('version', version);
      form.append('metadata', JSON.stringify(metadata));
      form.append('file', bytes instanceof Blob ? bytes : new Blob([bytes]), fileName);
      const res = await fetch(`${baseUrl}/api/v1/models/${model}/versions`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}` }, body: form });
      if (res.status !== 201) throw new Error(`upload ${model}@${version}: HTTP ${res.status}: ${await res.text()}`);
      return res.json();
    },
    device: (id) => call('GET', `/api/v1/devices/${id}`),
    assign: (id, model, version) => call('PUT', `/api/v1/devices/${id}/models/${model}`, { version }),
    summary: () => call('GET', '/api/v1/fleet/summary'),
  };
}

/** Memory of a process from /proc/<pid>/status, in bytes (VmRSS, VmHWM, RssAnon, RssFile). */
export function procMemory(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** Sum of VmRSS over a process and its direct children (e.g. a simulator and its workers). */
export function treeRss(pid) {
  let total = procMemory(pid).rss ?? 0;
  let children;
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    children = '';
  }
  for (const c of children.split(/\s+/).filter(Boolean)) {
    try {
      total += procMemory(Number(c)).rss ?? 0;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

export const mb = (bytes) => (bytes === null || bytes === undefined ? '-' : (bytes / 1024 / 1024).toFixed(1));

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function writeResult(name, data) {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  log(`results written to ${file}`);
  return file;
}

export { freePort, sleep, until };
