import { type ChildProcess, spawn } from 'node:child_process';
import { type FetchFn, fetchTrusting } from '../../device-agent/src/util/tls-fetch.js';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScratchDatabase } from '../../apps/control-plane/src/testing/test-app.fixture.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
export const controlPlaneMain = join(repoRoot, 'apps/control-plane/dist/main.js');
export const agentMain = join(repoRoot, 'device-agent/dist/cli/main.js');
export const fleetctlMain = join(repoRoot, 'apps/fleetctl/dist/main.js');

/** A free TCP port on 127.0.0.1 (the OS picks it; tests never use 1883 or 3000). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** A fresh PostgreSQL database when DATABASE_URL is set; undefined means "use PGlite". */
export type ScratchDatabase = Awaited<ReturnType<typeof createScratchDatabase>>;

export async function scratchDatabase(): Promise<ScratchDatabase | undefined> {
  return process.env['DATABASE_URL'] ? createScratchDatabase() : undefined;
}

export interface ControlPlaneProcess {
  baseUrl: string;
  mqttUrl: string;
  httpPort: number;
  mqttPort: number;
  adminKey: string;
  dataDir: string;
  databaseUrl?: string;
  child: ChildProcess;
  /** fetch() that trusts the control plane's CA (the global one without TLS). */
  fetch: FetchFn;
  output(): string;
  /** SIGKILL, no goodbye: what a power cut or OOM kill looks like. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  dataDir?: string;
  databaseUrl?: string;
  httpPort?: number;
  mqttPort?: number;
  adminKey?: string;
  env?: Record<string, string>;
  /** TLS on (the env sets TLS_CERT_FILE/TLS_KEY_FILE): the API is HTTPS, verified against this CA. */
  ca?: string;
}

/**
 * Runs the built control plane (apps/control-plane/dist/main.js) as a real child process on
 * ephemeral ports and waits for /readyz. Pass the same dataDir/databaseUrl/ports to restart it.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlaneProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fleetline-e2e-')));
  const httpPort = options.httpPort ?? (await freePort());
  const mqttPort = options.mqttPort ?? (await freePort());
  const adminKey = options.adminKey ?? `flk_e2e_${randomBytes(24).toString('base64url')}`;
  let log = '';
  const child = spawn(process.execPath, [controlPlaneMain], {
    env: {
      ...process.env,
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      DATA_DIR: dataDir,
      DATABASE_URL: options.databaseUrl ?? '',
      FLEET_ADMIN_KEY: adminKey,
      LOG_LEVEL: 'warn',
      ROLLOUT_TICK_SECONDS: '0.5',
      // Every simulated device enrolls from 127.0.0.1: one address, hundreds of devices at once.
      ENROLL_RATE_PER_SECOND: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const baseUrl = `${options.ca !== undefined ? 'https' : 'http'}://127.0.0.1:${httpPort}`;
  const fetchFn = fetchTrusting(options.ca);
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  const readyTimeoutMs = Number(process.env['E2E_READY_TIMEOUT_MS'] ?? 180_000);
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`control plane exited with ${child.exitCode}:\n${log}`);
    try {
      const response = await fetchFn(`${baseUrl}/readyz`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`control plane not ready after ${readyTimeoutMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    baseUrl,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    httpPort,
    mqttPort,
    adminKey,
    dataDir,
    databaseUrl: options.databaseUrl,
    child,
    fetch: fetchFn,
    output: () => log,
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
