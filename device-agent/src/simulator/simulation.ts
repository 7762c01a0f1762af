import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DeviceCredentials, ReportState } from '@fleetline/protocol';
import { Agent } from '../agent.js';
import { AGENT_VERSION } from '../agent-version.js';
import { EnrollError, type enroll } from '../config/enroll.js';
import { decideEnrollRetry } from '../config/enroll-retry.logic.js';
import { HttpVerifyDownloader } from '../download/http-verify-downloader.js';
import { MemoryModelStore } from '../install/model-store.js';
import { RuntimeRegistry } from '../runtime/model-runtime.js';
import { simulatedRuntimeFactory } from '../runtime/simulated-runtime.js';
import { MemoryStateStore } from '../storage/store.js';
import { Backoff, sleep } from '../util/backoff.js';
import { Semaphore } from '../util/semaphore.js';
import { behaviourFor, parseBehaviours, sampleLabel, sampleLatency, type Behaviour } from './behaviour.js';
import { EnrollClient } from './enroll-client.js';
import { InternPool, LazyDownloader, shareCredentials } from './shared-values.js';
import { TrafficWheel } from './traffic-wheel.js';

export interface SimulationOptions {
  /**
   * Enrollment server base URL(s): device `i` enrolls at `servers[i % n]` (and a retry moves on to
   * the next one), so a fleet's enrollment spreads over several control-plane replicas. A string
   * may itself be a comma-separated list.
   */
  server: string | readonly string[];
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
  /** Accelerators every simulated device reports (e.g. ["npu"]); none by default. */
  accelerators?: string[];
  /**
   * Number of 127.0.0.x source addresses to spread broker connections over (loopback brokers only):
   * a source address has ~28k ephemeral ports, whatever the destination.
   */
  sourceAddresses?: number;
  healthCheckTimeoutMs?: number;
  /** Artifact downloads in flight per process (each holds a socket). */
  downloadConcurrency?: number;
  /** First device index (workers get slices of the fleet). */
  offset?: number;
  /** Devices enroll, then wait for `connect()` before the first one connects (measures the two apart). */
  holdConnections?: boolean;
  /** At most this many devices waiting for their first broker connection at once, per process (0: no limit). */
  connectConcurrency?: number;
  /** How often worker processes report their stats to the parent (ms). */
  statsIntervalMs?: number;
  /**
   * Node/V8 flags of the worker processes: memory for CPU. Measured at 5,000 devices per process
   * (test/bench/simulator-memory.bench.mjs, BENCH_NODE_FLAGS), RSS per device after a rollout, as
   * the process holds it: default ~87 KB; `--heap-growing-percent=20` ~44 KB for ~1.5x the CPU of
   * an update (enrollment and connect unchanged); `--optimize-for-size` ~45 KB for 2-3x the CPU.
   */
  workerExecArgv?: string[];
  log?: (msg: string) => void;
}

export interface SimulationStats {
  devices: number;
  enrolled: number;
  enrollFailed: number;
  connected: number;
  /** Reports sent, by state. */
  reports: Partial<Record<ReportState, number>>;
  /** Failure codes reported, by code. */
  failures: Record<string, number>;
  telemetryMessages: number;
  inferences: number;
  /** Active version counts per model: { model: { version: devices } }. */
  active: Record<string, Record<string, number>>;
  enrollErrors: string[];
  /** Memory of the simulating process(es), summed over workers: bytes. */
  memory: { rss: number; heapUsed: number };
}

export interface SimulationHandle {
  stats(): SimulationStats;
  /** Resolves when every device has finished enrolling (successfully or not). */
  enrolled: Promise<void>;
  /** Lets held devices connect (`holdConnections`); a no-op otherwise. */
  connect(): void;
  /** Resolves when every device has finished enrolling and started (and, with a connect limit, connected or given up waiting). */
  ready: Promise<void>;
  stop(): Promise<SimulationStats>;
}

/** What the simulator keeps per device beside the Agent itself. */
class SimDevice {
  /** Active version per model (drives inference traffic); created with the first active model. */
  active: Map<string, string> | undefined;
  /** Fractional inferences carried over to the next traffic visit. */
  carry = 0;

  constructor(readonly agent: Agent) {}
}

function emptyStats(devices: number): SimulationStats {
  return {
    devices,
    enrolled: 0,
    enrollFailed: 0,
    connected: 0,
    reports: {},
    failures: {},
    telemetryMessages: 0,
    inferences: 0,
    active: {},
    enrollErrors: [],
    memory: { rss: 0, heapUsed: 0 },
  };
}

/** `--server a,b --server c` and `['a,b', 'c']` alike: the enrollment servers, in order. */
export function serverList(server: string | readonly string[]): string[] {
  const list = (typeof server === 'string' ? [server] : server)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0) throw new Error('at least one enrollment server is required');
  return list;
}

function isLoopback(url: string): boolean {
  try {
    const h = new URL(url).hostname;
    return h === 'localhost' || h.startsWith('127.');
  } catch {
    return false;
  }
}

/** Every broker endpoint of the credentials is on this machine (so 127.0.0.x sources can reach it). */
function brokersAreLoopback(creds: DeviceCredentials): boolean {
  return (creds.mqtt.urls && creds.mqtt.urls.length > 0 ? creds.mqtt.urls : [creds.mqtt.url]).every(isLoopback);
}

/** How long a simulated device keeps trying to enroll, waits included. */
const SIM_ENROLL_BUDGET_MS = 120_000;

/**
 * Enrollment with retries for transient failures (network errors, 429, 5xx): thousands of devices
 * enrolling at once are exactly what makes a control plane shed load for a moment. Waits are the
 * agent's (decideEnrollRetry: no sooner than Retry-After, jitter on top) on a shorter backoff, up
 * to SIM_ENROLL_BUDGET_MS. Each retry goes to the next server of the list, so a replica that is
 * down does not fail its share of the fleet; any 5xx counts as transient for that reason.
 */
export async function enrollWithRetry(
  client: EnrollClient,
  servers: readonly string[],
  first: number,
  request: Parameters<typeof enroll>[1],
): Promise<DeviceCredentials> {
  const backoff = new Backoff({ baseMs: 500, capMs: 15_000 });
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.enroll(servers[(first + attempt - 1) % servers.length]!, request);
    } catch (err: unknown) {
      if (!(err instanceof EnrollError)) throw err;
      const decision = decideEnrollRetry(
        {
          status: err.status,
          networkCode: err.networkCode,
          retryAfter: err.retryAfter,
          elapsedMs: performance.now() - started,
          nowMs: Date.now(),
          jitterMs: backoff.next(),
        },
        { budgetMs: SIM_ENROLL_BUDGET_MS, maxWaitMs: 15_000, transient: (status) => status === 429 || status >= 500 },
      );
      if (!decision.retry) throw err;
      await sleep(decision.waitMs);
    }
  }
}

/** Runs `fn` over indices `from..from+count-1` with at most `limit` in flight. */
async function pool(from: number, count: number, limit: number, fn: (index: number) => Promise<void>, stopped: () => boolean): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, count)) }, async () => {
    while (next < count && !stopped()) await fn(from + next++);
  });
  await Promise.all(workers);
}

/** How long a device may hold a place of the connect limit waiting for its first CONNACK. */
const FIRST_CONNECT_WAIT_MS = 30_000;

const noVitals = async (): Promise<{ cpuPercent: number; memoryRssBytes: number }> => ({ cpuPercent: 0, memoryRssBytes: 0 });

/**
 * Simulated fleet in this process: every device is a full `Agent` (same reconciler, journal,
 * transition table, outboxes and MQTT protocol as a real device) with in-memory storage, the
 * `simulated` runtime and a downloader that fetches and hashes but keeps no bytes.
 *
 * Memory per device is what bounds a simulator (100,000 devices on one machine beside the control
 * planes), so everything devices can share is shared: one inventory object, one runtime registry,
 * one set of event handlers, one copy of equal credential strings, one traffic timer wheel for
 * the whole process; a device's downloader is created on its first download, and enrollment goes
 * through one keep-alive pool (EnrollClient).
 */
export function startSimulationInProcess(opts: SimulationOptions): SimulationHandle {
  const table = parseBehaviours(opts.behaviours ?? []);
  const stats = emptyStats(opts.devices);
  const servers = serverList(opts.server);
  const devices = new Map<Agent, SimDevice>();
  const prefix = opts.idPrefix ?? `sim-${randomBytes(3).toString('hex')}`;
  const offset = opts.offset ?? 0;
  const addresses = opts.sourceAddresses ?? 1;
  let stopping = false;
  const log = opts.log;
  const downloads = new Semaphore(opts.downloadConcurrency ?? 200);
  const strings = new InternPool();
  const enrollClient = new EnrollClient(opts.enrollConcurrency ?? 50);
  const behaviour = (v: string): Behaviour => behaviourFor(table, v);
  // As a shadow candidate a version answers with its own latency and error rate, disagreeing on its `disagreement` share.
  const runtimes = new RuntimeRegistry().register(
    simulatedRuntimeFactory((v) => {
      const b = behaviour(v);
      return { healthFail: b.healthFail, disagreement: b.disagreement, inferLatencyMs: b.latencyMs, inferErrorRate: b.errorRate };
    }),
  );
  const inventory = {
    hardwareClass: opts.hardwareClass ?? 'sim',
    os: 'simulated',
    arch: 'sim',
    accelerators: opts.accelerators ?? [],
    agentVersion: AGENT_VERSION,
    runtimes: runtimes.versions(),
  };
  const enrollRequestBase = { token: opts.token, ...(opts.tags ? { tags: opts.tags } : {}), inventory };
  const makeDownloader = (creds: DeviceCredentials): HttpVerifyDownloader =>
    new HttpVerifyDownloader({
      deviceId: creds.deviceId,
      secret: creds.secret,
      targetsUrl: creds.tuf.targetsUrl,
      mode: opts.download ?? 'full',
      failProbability: (v) => behaviour(v).downloadFail,
      limiter: downloads,
    });

  const bump = (model: string, version: string | null | undefined, delta: number): void => {
    if (!version) return;
    const m = (stats.active[model] ??= {});
    m[version] = (m[version] ?? 0) + delta;
    if (m[version] === 0) delete m[version];
  };

  // Inference traffic: every second, `rate` inferences per active model on average.
  const traffic = new TrafficWheel<SimDevice>((device, seconds) => {
    if (!device.active) return;
    for (const [model, version] of device.active) {
      const b = behaviour(version);
      device.carry += b.rate * seconds;
      const n = Math.floor(device.carry);
      device.carry -= n;
      // The active answer is the simulated input too: a shadow candidate then disagrees on exactly its share.
      const shadowing = n > 0 && device.agent.shadowing(model);
      for (let i = 0; i < n; i++) {
        const ok = Math.random() >= b.errorRate;
        const label = ok ? sampleLabel(b.shift) : undefined;
        device.agent.recordInference({
          model,
          latencyMs: sampleLatency(b.latencyMs),
          ok,
          ...(label !== undefined ? { label, ...(shadowing ? { input: { label } } : {}) } : {}),
        });
        stats.inferences++;
      }
    }
  });

  // One set of handlers for every device (EventEmitter calls them with the emitting agent as `this`).
  function onConnected(): void {
    stats.connected++;
  }
  function onDisconnected(): void {
    stats.connected--;
  }
  function onReport(r: { state: ReportState; failure?: { code: string } }): void {
    stats.reports[r.state] = (stats.reports[r.state] ?? 0) + 1;
    // Count each failed update once, at its terminal report (rolling-back carries the code too).
    if (r.failure && r.state !== 'rolling-back') stats.failures[r.failure.code] = (stats.failures[r.failure.code] ?? 0) + 1;
  }
  function onTelemetry(n: number): void {
    stats.telemetryMessages += n;
  }
  function onActiveChanged(this: Agent, model: string, version: string | null): void {
    const device = devices.get(this);
    if (!device) return;
    bump(model, device.active?.get(model), -1);
    if (version) (device.active ??= new Map()).set(model, version);
    else device.active?.delete(model);
    bump(model, version, +1);
    if (device.active && device.active.size > 0) traffic.add(device);
    else traffic.delete(device);
  }

  const startDevice = async (index: number): Promise<void> => {
    const id = `${prefix}-${String(index).padStart(6, '0')}`;
    let creds: DeviceCredentials;
    try {
      creds = shareCredentials(await enrollWithRetry(enrollClient, servers, index % servers.length, { ...enrollRequestBase, id }), strings);
    } catch (err: unknown) {
      stats.enrollFailed++;
      if (stats.enrollErrors.length < 10) stats.enrollErrors.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    stats.enrolled++;
    if (stopping) return;
    const agent = new Agent({
      credentials: creds,
      store: new MemoryStateStore(),
      models: new MemoryModelStore(),
      downloader: new LazyDownloader(creds, makeDownloader),
      runtimes,
      inventory,
      telemetryIntervalMs: (opts.telemetryIntervalSeconds ?? 60) * 1000,
      healthCheckTimeoutMs: opts.healthCheckTimeoutMs ?? 10_000,
      ...(addresses > 1 && brokersAreLoopback(creds) ? { localAddress: strings.string(`127.0.0.${1 + (index % addresses)}`) } : {}),
      vitals: noVitals,
    });
    devices.set(agent, new SimDevice(agent));
    agent.on('connected', onConnected);
    agent.on('disconnected', onDisconnected);
    agent.on('report', onReport);
    agent.on('active-changed', onActiveChanged);
    agent.on('telemetry', onTelemetry);
    if (released && connectLimit === 0) await agent.start();
    else {
      waiting.push(agent);
      pump();
    }
  };

  // Starting agents: at once, or through a queue (held until connect(), at most connectLimit waiting
  // for their first CONNACK; one that has not connected after FIRST_CONNECT_WAIT_MS frees its place).
  const connectLimit = opts.connectConcurrency ?? 0;
  let released = opts.holdConnections !== true;
  const waiting: Agent[] = [];
  let connecting = 0;
  let enrollDone = false;
  let allStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (allStarted = resolve));
  const startOne = async (agent: Agent): Promise<void> => {
    await agent.start();
    if (connectLimit === 0 || agent.connected) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        agent.off('connected', done);
        resolve();
      };
      const timer = setTimeout(done, FIRST_CONNECT_WAIT_MS);
      agent.on('connected', done);
    });
  };
  const pump = (): void => {
    while (released && !stopping && waiting.length > 0 && (connectLimit === 0 || connecting < connectLimit)) {
      connecting++;
      const agent = waiting.shift()!;
      void startOne(agent)
        .catch((err: unknown) => log?.(`start ${agent.deviceId}: ${String(err)}`))
        .finally(() => {
          connecting--;
          pump();
        });
    }
    if (enrollDone && connecting === 0 && (waiting.length === 0 || stopping)) allStarted();
  };

  const enrolled = pool(offset, opts.devices, opts.enrollConcurrency ?? 50, startDevice, () => stopping).then(() => {
    log?.(`${stats.enrolled} devices enrolled, ${stats.enrollFailed} failed to enroll`);
    enrollClient.close();
    enrollDone = true;
    pump();
  });
  const ready = enrolled.then(() => started);

  const snapshot = (): SimulationStats => {
    const m = process.memoryUsage();
    stats.memory = { rss: m.rss, heapUsed: m.heapUsed };
    return structuredClone(stats);
  };
  return {
    stats: snapshot,
    enrolled,
    connect(): void {
      released = true;
      pump();
    },
    ready,
    async stop(): Promise<SimulationStats> {
      stopping = true;
      await enrolled.catch(() => undefined);
      pump();
      traffic.stop();
      await Promise.all([...devices.keys()].map((agent) => agent.stop().catch(() => undefined)));
      return snapshot();
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
  out.memory = { rss: out.memory.rss + b.memory.rss, heapUsed: out.memory.heapUsed + b.memory.heapUsed };
  for (const [k, v] of Object.entries(b.reports)) out.reports[k as ReportState] = (out.reports[k as ReportState] ?? 0) + (v ?? 0);
  for (const [k, v] of Object.entries(b.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
  for (const [model, versions] of Object.entries(b.active)) {
    const m = (out.active[model] ??= {});
    for (const [v, n] of Object.entries(versions)) m[v] = (m[v] ?? 0) + n;
  }
  out.enrollErrors = [...out.enrollErrors, ...b.enrollErrors].slice(0, 10);
  return out;
}

type WorkerMessage = { type: 'stats' | 'enrolled' | 'ready' | 'stopped'; stats: SimulationStats };

/**
 * Simulated fleet, spread over `workers` child processes (child_process.fork) when workers > 0.
 * A process can hold ~19,900 sockets here, so large fleets need several; each worker gets a slice
 * of device indices and reports its stats over IPC.
 */
export function startSimulation(opts: SimulationOptions): SimulationHandle {
  const workers = opts.workers ?? 0;
  const idPrefix = opts.idPrefix ?? `sim-${randomBytes(3).toString('hex')}`;
  const servers = serverList(opts.server);
  // ~28k ephemeral ports per source address: keep each one well below that.
  const sourceAddresses = opts.sourceAddresses ?? (servers.every(isLoopback) ? Math.max(1, Math.ceil(opts.devices / 20_000)) : 1);
  if (workers <= 0) return startSimulationInProcess({ ...opts, server: servers, idPrefix, sourceAddresses });

  const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));
  const perWorker = Math.ceil(opts.devices / workers);
  const children: Array<{ child: ChildProcess; stats: SimulationStats; exited: Promise<void> }> = [];
  const readies: Promise<void>[] = [];
  const enrollments: Promise<void>[] = [];
  for (let w = 0; w < workers; w++) {
    const offset = w * perWorker;
    const count = Math.max(0, Math.min(perWorker, opts.devices - offset));
    if (count === 0) break;
    const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...(opts.workerExecArgv ? { execArgv: opts.workerExecArgv } : {}) });
    const entry = { child, stats: emptyStats(count), exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) };
    const settled = (type: 'enrolled' | 'ready'): Promise<void> =>
      new Promise<void>((resolve) => {
        child.on('message', (m: WorkerMessage) => m.type === type && resolve());
        child.once('exit', () => resolve());
      });
    child.on('message', (m: WorkerMessage) => {
      if (m.stats) entry.stats = m.stats;
    });
    enrollments.push(settled('enrolled'));
    readies.push(settled('ready'));
    const { log: _log, ...serialisable } = opts;
    child.send({ type: 'start', opts: { ...serialisable, server: servers, workers: 0, devices: count, offset, idPrefix, sourceAddresses } });
    children.push(entry);
  }
  const stats = (): SimulationStats => children.reduce((acc, c) => mergeStats(acc, c.stats), emptyStats(0));
  return {
    stats,
    enrolled: Promise.all(enrollments).then(() => undefined),
    connect(): void {
      for (const c of children) if (c.child.connected) c.child.send({ type: 'connect' });
    },
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
