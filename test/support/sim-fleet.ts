import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type FleetApi, sleep, waitFor } from './agent-fleet.js';
import { agentMain } from './control-plane.process.js';

/**
 * Simulated fleets for rollout and telemetry end-to-end tests: each group is one real
 * `fleet-agent simulate` process (full agents: reconciler, journal, outboxes, MQTT) built from
 * device-agent/dist, enrolled with an enrollment token against the control plane under test.
 */

export interface SimGroupOptions {
  /** Devices are `${idPrefix}-000000` ... (the simulator's naming). */
  idPrefix: string;
  devices: number;
  /** Tags given at enrollment (`--tag k=v`). */
  tags?: Record<string, string>;
  /** `VERSION:key=value,...` (see device-agent/src/simulator/behaviour.ts). */
  behaviours?: string[];
  telemetryIntervalSeconds?: number;
  workers?: number;
  download?: 'full' | 'skip';
  enrollConcurrency?: number;
  /** Simulated hardware (`--hardware-class`, `--accelerator`): decides which build of a version the devices get. */
  hardwareClass?: string;
  accelerators?: string[];
}

export interface SimulationSummary {
  devices: number;
  enrolled: number;
  enrollFailed: number;
  reports: Record<string, number>;
  failures: Record<string, number>;
  telemetryMessages: number;
  inferences: number;
  active: Record<string, Record<string, number>>;
}

export class SimGroup {
  private out = '';
  private err = '';
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly options: SimGroupOptions,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => {
      // Progress lines every 2 s: keep the tail only.
      this.err = (this.err + d.toString()).slice(-20_000);
    });
  }

  /** Spawns the simulator; call `waitOnline` before relying on the devices. */
  static start(server: string, token: string, options: SimGroupOptions): SimGroup {
    const args = [
      agentMain,
      'simulate',
      '--server',
      server,
      '--token',
      token,
      '--devices',
      String(options.devices),
      '--workers',
      String(options.workers ?? 0),
      '--telemetry-interval',
      String(options.telemetryIntervalSeconds ?? 60),
      '--id-prefix',
      options.idPrefix,
      '--download',
      options.download ?? 'full',
      '--enroll-concurrency',
      String(options.enrollConcurrency ?? 50),
    ];
    for (const [k, v] of Object.entries(options.tags ?? {})) args.push('--tag', `${k}=${v}`);
    for (const b of options.behaviours ?? []) args.push('--behaviour', b);
    if (options.hardwareClass) args.push('--hardware-class', options.hardwareClass);
    for (const a of options.accelerators ?? []) args.push('--accelerator', a);
    // Jest's --experimental-vm-modules must not leak into the simulator processes.
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    return new SimGroup(options, spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get deviceIds(): string[] {
    return Array.from({ length: this.options.devices }, (_, i) => `${this.options.idPrefix}-${String(i).padStart(6, '0')}`);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Last lines of the simulator's progress output (for failure messages). */
  log(): string {
    return this.err.slice(-3000);
  }

  /** Waits until every device of the group is enrolled and shown online by the control plane. */
  async waitOnline(api: FleetApi, timeoutMs = 90_000): Promise<void> {
    const ids = new Set(this.deviceIds);
    await waitFor(
      `${this.options.devices} devices ${this.options.idPrefix}-* online`,
      async () => {
        if (!this.running) throw new Error(`simulator ${this.options.idPrefix} exited:\n${this.log()}`);
        const online = await listDevices(api, { q: `${this.options.idPrefix}-`, online: 'true' });
        return online.filter((d) => ids.has(d.id)).length === ids.size;
      },
      timeoutMs,
      500,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\nsimulator output (tail):\n${this.log()}`);
    });
  }

  /** SIGTERM: the simulator stops its agents and prints its summary. */
  async stop(): Promise<SimulationSummary | undefined> {
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
    try {
      return JSON.parse(this.out) as SimulationSummary;
    } catch {
      return undefined;
    }
  }
}

export interface ListedDevice {
  id: string;
  online: boolean;
  tags: Record<string, string>;
  models: { model: string; desiredVersion: string | null; activeVersion: string | null; reportedState: string | null }[];
}

/** Every device matching the filter (GET /api/v1/devices, keyset pages of 1000). */
export async function listDevices(api: FleetApi, filter: Record<string, string> = {}): Promise<ListedDevice[]> {
  const out: ListedDevice[] = [];
  let after: string | null = null;
  do {
    const query: URLSearchParams = new URLSearchParams({ ...filter, limit: '1000', ...(after ? { after } : {}) });
    const page: { items: ListedDevice[]; next: string | null } = (
      await api.request<{ items: ListedDevice[]; next: string | null }>('GET', `/api/v1/devices?${query.toString()}`, undefined, 200)
    ).body;
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out;
}

/** `model` on each listed device (undefined when the device has no row for it). */
export function modelOf(device: ListedDevice, model: string): ListedDevice['models'][number] | undefined {
  return device.models.find((m) => m.model === model);
}

/** Registers a model and uploads `simulated`-runtime versions (small random artifacts). */
export async function seedSimulatedModel(
  api: FleetApi,
  model: string,
  versions: string[],
  extraMetadata: Record<string, Record<string, unknown>> = {},
): Promise<void> {
  await api.createModel(model);
  for (const version of versions) {
    await api.uploadVersion(model, version, { name: 'weights.bin', bytes: randomBytes(2048) }, { runtime: 'simulated', ...(extraMetadata[version] ?? {}) });
  }
}

/** One Prometheus sample value from /metrics text (labels must match exactly the given subset). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const pair of (m[3] ?? '').split(',').filter(Boolean)) {
      const eq = pair.indexOf('=');
      have[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"|"$/g, '');
    }
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

export async function scrapeMetrics(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (!res.ok) throw new Error(`/metrics: HTTP ${res.status}`);
  return res.text();
}

export { sleep };
