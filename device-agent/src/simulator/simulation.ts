import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DeviceCredentials, UpdateState } from '@fleetline/protocol';
import { Agent } from '../agent.js';
import { AGENT_VERSION } from '../agent-version.js';
import { enroll, EnrollError } from '../config/enroll.js';
import { HttpVerifyDownloader } from '../download/http-verify-downloader.js';
import { MemoryModelStore } from '../install/model-store.js';
import { RuntimeRegistry } from '../runtime/model-runtime.js';
import { simulatedRuntimeFactory } from '../runtime/simulated-runtime.js';
import { MemoryStateStore } from '../storage/store.js';
import { Backoff, sleep } from '../util/backoff.js';
import { Semaphore } from '../util/semaphore.js';
import { behaviourFor, parseBehaviours, sampleLabel, sampleLatency, type Behaviour } from './behaviour.js';

export interface SimulationOptions {
  server: string;
  token: string;
  devices: number;
  /** Worker processes (0 = everything in this process). */
  workers?: number;
  tags?: Record<string, string>;
  /** `VERSION:key=value,...` specs (see parseBehaviours). */
  behaviours?: string[];
  telemetryIntervalSeconds?: number;
  download?: 'full' | 'skip';
  /** Enrollment requests in flight at once. */
  enrollConcurrency?: number;
  /** Device ids are `{idPrefix}-{index}`. */
  idPrefix?: string;
  hardwareClass?: string;
  /** Number of 127.0.0.x source addresses to spread broker connections over (loopback brokers only). */
  sourceAddresses?: number;
  healthCheckTimeoutMs?: number;
  /** Artifact downloads in flight per process (each holds a socket). */
  downloadConcurrency?: number;
  /** First device index (workers get slices of the fleet). */
  offset?: number;
  log?: (msg: string) => void;
}

export interface SimulationStats {
  devices: number;
  enrolled: number;
  enrollFailed: number;
  connected: number;
  /** Reports sent, by state. */
  reports: Partial<Record<UpdateState, number>>;
  /** Failure codes reported, by code. */
  failures: Record<string, number>;
  telemetryMessages: number;
  inferences: number;
  /** Active version counts per model: { model: { version: devices } }. */
  active: Record<string, Record<string, number>>;
  enrollErrors: string[];
}

export interface SimulationHandle {
  stats(): SimulationStats;
  /** Resolves when every device has finished enrolling (successfully or not) and started. */
  ready: Promise<void>;
  stop(): Promise<SimulationStats>;
}

interface SimDevice {
  agent: Agent;
  traffic: NodeJS.Timeout;
}

function emptyStats(devices: number): SimulationStats {
  return { devices, enrolled: 0, enrollFailed: 0, connected: 0, reports: {}, failures: {}, telemetryMessages: 0, inferences: 0, active: {}, enrollErrors: [] };
}

function isLoopback(url: string): boolean {
  try {
    const h = new URL(url).hostname;
    return h === 'localhost' || h.startsWith('127.');
  } catch {
    return false;
  }
}

/**
 * Enrollment with retries for transient failures (network errors, 429, 5xx): thousands of devices
 * enrolling at once are exactly what makes a control plane shed load for a moment.
 */
async function enrollWithRetry(server: string, request: Parameters<typeof enroll>[1], attempts = 6): Promise<DeviceCredentials> {
  const backoff = new Backoff({ baseMs: 500, capMs: 15_000 });
  for (let attempt = 1; ; attempt++) {
    try {
      return await enroll(server, request);
    } catch (err: unknown) {
      const status = err instanceof EnrollError ? err.status : undefined;
      const transient = status === undefined || status === 429 || status >= 500;
      if (!transient || attempt >= attempts) throw err;
      await sleep(backoff.next());
    }
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>, stopped: () => boolean): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && !stopped()) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/**
 * Simulated fleet in this process: every device is a full `Agent` (same reconciler, journal,
 * transition table, outboxes and MQTT protocol as a real device) with in-memory storage, the
 * `simulated` runtime and a downloader that fetches and hashes but keeps no bytes.
 */
export function startSimulationInProcess(opts: SimulationOptions): SimulationHandle {
  const table = parseBehaviours(opts.behaviours ?? []);
  const stats = emptyStats(opts.devices);
  const devices: SimDevice[] = [];
  const prefix = opts.idPrefix ?? `sim-${randomBytes(3).toString('hex')}`;
  const offset = opts.offset ?? 0;
  const addresses = opts.sourceAddresses ?? 1;
  let stopping = false;
  const log = opts.log;
  const activeByDevice = new Map<string, Map<string, string>>();
  const downloads = new Semaphore(opts.downloadConcurrency ?? 200);

  const bump = (model: string, version: string | null | undefined, delta: number): void => {
    if (!version) return;
    const m = (stats.active[model] ??= {});
    m[version] = (m[version] ?? 0) + delta;
    if (m[version] === 0) delete m[version];
  };

  const startDevice = async (index: number): Promise<void> => {
    const id = `${prefix}-${String(index).padStart(6, '0')}`;
    const inventory = {
      hardwareClass: opts.hardwareClass ?? 'sim',
      os: 'simulated',
      arch: 'sim',
      accelerators: [],
      agentVersion: AGENT_VERSION,
      runtimes: { simulated: '1.0.0' },
    };
    let creds: DeviceCredentials;
    try {
      creds = await enrollWithRetry(opts.server, { token: opts.token, id, ...(opts.tags ? { tags: opts.tags } : {}), inventory });
    } catch (err: unknown) {
      stats.enrollFailed++;
      if (stats.enrollErrors.length < 10) stats.enrollErrors.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    stats.enrolled++;
    if (stopping) return;
    const behaviour = (v: string): Behaviour => behaviourFor(table, v);
    const runtimes = new RuntimeRegistry().register(simulatedRuntimeFactory((v) => ({ healthFail: behaviour(v).healthFail })));
    const agent = new Agent({
      credentials: creds,
      store: new MemoryStateStore(),
      models: new MemoryModelStore(),
      downloader: new HttpVerifyDownloader({
        deviceId: creds.deviceId,
        secret: creds.secret,
        targetsUrl: creds.tuf.targetsUrl,
        mode: opts.download ?? 'full',
        failProbability: (v) => behaviour(v).downloadFail,
        limiter: downloads,
      }),
      runtimes,
      inventory,
      telemetryIntervalMs: (opts.telemetryIntervalSeconds ?? 60) * 1000,
      healthCheckTimeoutMs: opts.healthCheckTimeoutMs ?? 10_000,
      ...(addresses > 1 && isLoopback(creds.mqtt.url) ? { localAddress: `127.0.0.${1 + (index % addresses)}` } : {}),
      mqttBackoff: new Backoff({ baseMs: 1000, capMs: 60_000 }),
      vitals: async () => ({ cpuPercent: 0, memoryRssBytes: 0 }),
    });
    const active = new Map<string, string>();
    activeByDevice.set(id, active);
    agent.on('connected', () => stats.connected++);
    agent.on('disconnected', () => stats.connected--);
    agent.on('report', (r: { state: UpdateState; failure?: { code: string } }) => {
      stats.reports[r.state] = (stats.reports[r.state] ?? 0) + 1;
      // Count each failed update once, at its terminal report (rolling-back carries the code too).
      if (r.failure && r.state !== 'rolling-back') stats.failures[r.failure.code] = (stats.failures[r.failure.code] ?? 0) + 1;
    });
    agent.on('active-changed', (model: string, version: string | null) => {
      bump(model, active.get(model), -1);
      if (version) active.set(model, version);
      else active.delete(model);
      bump(model, version, +1);
    });
    // Inference traffic: every second, `rate` inferences per active model on average.
    let carry = 0;
    const traffic = setInterval(() => {
      for (const [model, version] of active) {
        const b = behaviour(version);
        carry += b.rate;
        const n = Math.floor(carry);
        carry -= n;
        for (let i = 0; i < n; i++) {
          const ok = Math.random() >= b.errorRate;
          agent.recordInference({ model, latencyMs: sampleLatency(b.latencyMs), ok, ...(ok ? { label: sampleLabel(b.shift) } : {}) });
          stats.inferences++;
        }
      }
    }, 1000);
    traffic.unref();
    agent.on('telemetry', (n: number) => (stats.telemetryMessages += n));
    devices.push({ agent, traffic });
    await agent.start();
  };

  const indices = Array.from({ length: opts.devices }, (_, i) => offset + i);
  const ready = pool(indices, opts.enrollConcurrency ?? 50, startDevice, () => stopping).then(() =>
    log?.(`${stats.enrolled} devices started, ${stats.enrollFailed} failed to enroll`),
  );

  return {
    stats: () => structuredClone(stats),
    ready,
    async stop(): Promise<SimulationStats> {
      stopping = true;
      await ready.catch(() => undefined);
      for (const d of devices) clearInterval(d.traffic);
      await Promise.all(devices.map((d) => d.agent.stop().catch(() => undefined)));
      return structuredClone(stats);
    },
  };
}

/** Adds `b` into `a` (stats from several workers). */
export function mergeStats(a: SimulationStats, b: SimulationStats): SimulationStats {
  const out = structuredClone(a);
  out.devices += b.devices;
  out.enrolled += b.enrolled;
  out.enrollFailed += b.enrollFailed;
  out.connected += b.connected;
  out.telemetryMessages += b.telemetryMessages;
  out.inferences += b.inferences;
  for (const [k, v] of Object.entries(b.reports)) out.reports[k as UpdateState] = (out.reports[k as UpdateState] ?? 0) + (v ?? 0);
  for (const [k, v] of Object.entries(b.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
  for (const [model, versions] of Object.entries(b.active)) {
    const m = (out.active[model] ??= {});
    for (const [v, n] of Object.entries(versions)) m[v] = (m[v] ?? 0) + n;
  }
  out.enrollErrors = [...out.enrollErrors, ...b.enrollErrors].slice(0, 10);
  return out;
}

type WorkerMessage = { type: 'stats'; stats: SimulationStats } | { type: 'ready' } | { type: 'stopped'; stats: SimulationStats };

/**
 * Simulated fleet, spread over `workers` child processes (child_process.fork) when workers > 0.
 * A process can hold ~19,900 sockets here, so large fleets need several; each worker gets a slice
 * of device indices and reports its stats over IPC.
 */
export function startSimulation(opts: SimulationOptions): SimulationHandle {
  const workers = opts.workers ?? 0;
  const idPrefix = opts.idPrefix ?? `sim-${randomBytes(3).toString('hex')}`;
  const sourceAddresses = opts.sourceAddresses ?? (isLoopback(opts.server) ? Math.max(1, Math.ceil(opts.devices / 20_000)) : 1);
  if (workers <= 0) return startSimulationInProcess({ ...opts, idPrefix, sourceAddresses });

  const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));
  const perWorker = Math.ceil(opts.devices / workers);
  const children: Array<{ child: ChildProcess; stats: SimulationStats; exited: Promise<void> }> = [];
  const readies: Promise<void>[] = [];
  for (let w = 0; w < workers; w++) {
    const offset = w * perWorker;
    const count = Math.max(0, Math.min(perWorker, opts.devices - offset));
    if (count === 0) break;
    const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const entry = { child, stats: emptyStats(count), exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) };
    readies.push(
      new Promise<void>((resolve) => {
        child.on('message', (m: WorkerMessage) => {
          if (m.type === 'stats' || m.type === 'stopped') entry.stats = m.stats;
          if (m.type === 'ready') resolve();
        });
        child.once('exit', () => resolve());
      }),
    );
    const { log: _log, ...serialisable } = opts;
    child.send({ type: 'start', opts: { ...serialisable, workers: 0, devices: count, offset, idPrefix, sourceAddresses } });
    children.push(entry);
  }
  const stats = (): SimulationStats => children.reduce((acc, c) => mergeStats(acc, c.stats), emptyStats(0));
  return {
    stats,
    ready: Promise.all(readies).then(() => undefined),
    async stop(): Promise<SimulationStats> {
      for (const c of children) if (c.child.connected) c.child.send({ type: 'stop' });
      await Promise.all(
        children.map((c) =>
          Promise.race([
            c.exited,
            new Promise<void>((resolve) =>
              setTimeout(() => {
                c.child.kill('SIGKILL');
                resolve();
              }, 30_000).unref(),
            ),
          ]),
        ),
      );
      return stats();
    },
  };
}
