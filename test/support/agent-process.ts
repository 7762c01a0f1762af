import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentMain } from './control-plane.process.js';
import { waitFor } from './agent-fleet.js';

/**
 * A real `fleet-agent` (device-agent/dist/cli/main.js) as a child process with its own data dir:
 * enroll, run, SIGKILL/SIGTERM, `status --json`, and direct reads of its journal and model store.
 */

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface AgentStatusModel {
  model: string;
  activeVersion: string | null;
  /** The build of activeVersion installed (null: none recorded). */
  activeVariant: string | null;
  lastKnownGood: string | null;
  path: string | null;
  update: {
    version: string;
    revision: number;
    variant: string | null;
    state: string;
    inFlight: boolean;
    restarts: number;
    failure: { code: string; message: string } | null;
  } | null;
}

export interface AgentStatus {
  deviceId: string | null;
  enrolled: boolean;
  agentVersion: string;
  models: AgentStatusModel[];
}

export interface JournalView {
  model: string;
  state: string;
  restarts: number;
  desired: { version: string; revision: number };
  failure?: { code: string; message: string };
}

/** Environment for agent children: no jest flags, and never the shared default local API port. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_OPTIONS'];
  for (const key of Object.keys(env)) if (key.startsWith('FLEET_AGENT_')) delete env[key];
  return { ...env, FLEET_AGENT_LOCAL_API_TRANSPORT: 'tcp', FLEET_AGENT_LOCAL_API_PORT: '0', FLEET_AGENT_TELEMETRY_INTERVAL_SECONDS: '5', ...extra };
}

export function runAgentCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [agentMain, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Kills `pid` with SIGKILL the moment `journalFile` names `state`. Runs as its own process that
 * polls the file every ~100 µs, so the kill is not delayed by the test runner's event loop: the
 * agent's journal is replaced by rename, so every read sees one complete entry.
 */
const KILLER_SOURCE = `
const { readFileSync } = require('node:fs');
const [pid, file, state, version, timeoutMs] = process.argv.slice(1);
const nap = new Int32Array(new SharedArrayBuffer(4));
const deadline = Date.now() + Number(timeoutMs);
process.stdout.write('ready\\n');
for (;;) {
  let seen;
  try {
    const entry = JSON.parse(readFileSync(file, 'utf8'));
    seen = entry.desired && entry.desired.version === version ? entry.state : undefined;
  } catch { seen = undefined; }
  if (seen === state) {
    try { process.kill(Number(pid), 'SIGKILL'); } catch {}
    process.stdout.write('killed\\n');
    process.exit(0);
  }
  if (Date.now() > deadline) { process.stdout.write('timeout ' + seen + '\\n'); process.exit(1); }
  Atomics.wait(nap, 0, 0, 0.1);
}
`;

export interface ArmedKill {
  /** Resolves after the kill (and the agent's exit) or the watcher's timeout, with the journal as left. */
  result: Promise<{ killed: boolean; journal: JournalView | undefined }>;
}

export class AgentProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private log = '';
  /** Every run's output, across restarts (for failure messages). */
  private history = '';
  deviceId = '';

  private constructor(
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  /** A fresh data dir with an optional agent.json; `env` is added to every command of this agent. */
  static async create(options: { config?: Record<string, unknown>; env?: Record<string, string> } = {}): Promise<AgentProcess> {
    const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-agent-e2e-'));
    if (options.config) await writeFile(join(dataDir, 'agent.json'), JSON.stringify(options.config, null, 2));
    return new AgentProcess(dataDir, options.env ?? {});
  }

  async enroll(
    server: string,
    token: string,
    options: { id?: string; tags?: Record<string, string>; args?: string[]; caFile?: string } = {},
  ): Promise<CliResult> {
    const args = ['enroll', '--server', server, '--token', token, '--data-dir', this.dataDir];
    if (options.caFile) args.push('--ca-file', options.caFile);
    if (options.id) args.push('--id', options.id);
    for (const [k, v] of Object.entries(options.tags ?? {})) args.push('--tag', `${k}=${v}`);
    args.push(...(options.args ?? []));
    const result = await runAgentCli(args, this.env);
    const credentials = JSON.parse(await readFile(join(this.dataDir, 'credentials.json'), 'utf8').catch(() => '{}')) as { deviceId?: string };
    this.deviceId = credentials.deviceId ?? '';
    return result;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.history;
  }

  /** `fleet-agent run`; resolves once the agent logged that it started (journal recovery included). */
  async start(): Promise<void> {
    if (this.running) throw new Error('agent already running');
    this.log = '';
    this.history += `\n--- run ${new Date().toISOString()} ---\n`;
    const child = spawn(process.execPath, [agentMain, 'run', '--data-dir', this.dataDir], { env: childEnv(this.env), stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (d: Buffer): void => {
      this.log += d.toString();
      this.history += d.toString();
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(
      `agent ${this.deviceId} to start`,
      () => {
        if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}:\n${this.log}`);
        return this.log.includes(' started as ');
      },
      30_000,
      50,
    );
  }

  /** SIGKILL: what a power cut looks like to the agent. */
  async kill(): Promise<void> {
    if (this.running) this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for the exit code (the agent finishes its step and flushes first). */
  async stop(): Promise<number | null> {
    if (!this.running) return this.exited;
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 20_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** Base URL of the agent's local API, from its start-up log line. */
  localApiUrl(): string {
    const m = /local API on (?:http:\/\/)?([0-9.]+:\d+)/.exec(this.log);
    if (!m) throw new Error(`no local API address in the agent log:\n${this.log}`);
    return `http://${m[1]}`;
  }

  async status(): Promise<AgentStatus> {
    const result = await runAgentCli(['status', '--data-dir', this.dataDir, '--json'], this.env);
    if (result.code !== 0) throw new Error(`fleet-agent status exited ${result.code}: ${result.stderr}`);
    return JSON.parse(result.stdout) as AgentStatus;
  }

  async modelStatus(model: string): Promise<AgentStatusModel | undefined> {
    return (await this.status()).models.find((m) => m.model === model);
  }

  journalPath(model: string): string {
    return join(this.dataDir, 'state', 'journal', `${model}.json`);
  }

  async journal(model: string): Promise<JournalView | undefined> {
    try {
      return JSON.parse(await readFile(this.journalPath(model), 'utf8')) as JournalView;
    } catch {
      return undefined;
    }
  }

  /** Bytes of `fileName` in the active version, read through the `current` symlink. */
  async activeFile(model: string, fileName: string): Promise<Buffer> {
    return readFile(join(this.dataDir, 'models', model, 'current', fileName));
  }

  /** Partial downloads: file name -> size. */
  async partialDownloads(): Promise<Map<string, number>> {
    const dir = join(this.dataDir, 'downloads', 'partial');
    const out = new Map<string, number>();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s) out.set(name, s.size);
    }
    return out;
  }

  /**
   * Arms a watcher process that SIGKILLs this agent as soon as its journal for `model` shows
   * `state` for `version`. Resolves once the watcher polls; call it before triggering the update.
   */
  async armKill(model: string, version: string, state: string, timeoutMs = 60_000): Promise<ArmedKill> {
    const pid = this.pid;
    if (!pid || !this.running) throw new Error('agent is not running');
    const watcher = spawn(process.execPath, ['-e', KILLER_SOURCE, String(pid), this.journalPath(model), state, version, String(timeoutMs)], {
      env: childEnv({}),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const closed = new Promise<void>((resolve) => watcher.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      watcher.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      watcher.once('close', () => reject(new Error(`kill watcher exited early: ${out}`)));
    });
    const result = (async (): Promise<{ killed: boolean; journal: JournalView | undefined }> => {
      await closed;
      const killed = out.includes('killed');
      if (killed) await this.exited;
      return { killed, journal: await this.journal(model) };
    })();
    return { result };
  }

  async remove(): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * The health check for the `command` runtime in these tests: it reads the artifact's first line,
 * fails for `health=fail` (exit 1) and sleeps `sleep=N` seconds first (a slow self-test).
 */
export const HEALTH_SCRIPT = `#!/bin/sh
header=$(head -n 1 "$1" | cut -c1-80)
case "$header" in
  *sleep=[0-9]*) s=\${header#*sleep=}; s=\${s%%[!0-9]*}; sleep "$s" ;;
esac
case "$header" in
  *health=fail*) echo "model $1 refused by the health check" >&2; exit 1 ;;
esac
exit 0
`;

export async function writeHealthScript(dir: string): Promise<string> {
  const path = join(dir, 'health-check.sh');
  await writeFile(path, HEALTH_SCRIPT, { mode: 0o755 });
  return path;
}

/** Artifact bytes for the `command` runtime: a header line the health script reads, then random bytes. */
export function commandArtifact(options: { size: number; health?: 'ok' | 'fail'; sleepSeconds?: number; seed: string }): Buffer {
  const header = Buffer.from(`fleetline-test ${options.seed} health=${options.health ?? 'ok'} sleep=${options.sleepSeconds ?? 0}\n`);
  const body = randomBytes(Math.max(0, options.size - header.length));
  return Buffer.concat([header, body]);
}
