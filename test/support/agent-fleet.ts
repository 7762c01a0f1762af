import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FetchFn } from '../../device-agent/src/util/tls-fetch.js';
import { type ControlPlaneProcess, type ScratchDatabase, scratchDatabase, startControlPlane } from './control-plane.process.js';

/**
 * The control plane as agent end-to-end tests drive it: the built process (embedded broker,
 * PGlite, or PostgreSQL when DATABASE_URL is set) and a small admin API client over fetch.
 */

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

export interface DeviceModelView {
  model: string;
  desiredVersion: string | null;
  desiredRevision: number;
  reportedVersion: string | null;
  reportedState: string | null;
  reportedRevision: number | null;
  activeVersion: string | null;
  previousVersion: string | null;
  failure: { code: string; message: string | null } | null;
  desiredVariant: string | null;
  variant: string | null;
}

export interface DeviceView {
  id: string;
  online: boolean;
  tags: Record<string, string>;
  inventory: { runtimes?: Record<string, string>; hardwareClass?: string } | null;
  models: DeviceModelView[];
}

export interface UploadedVersion {
  model: string;
  version: string;
  artifacts: { fileName: string; targetPath: string; sha256: string; size: number; runtime: string; variant: string }[];
}

export interface FleetSummaryView {
  devices: { total: number; online: number; offline: number };
  models: { model: string; versions: { version: string; devices: number }[]; unassigned: number }[];
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined/false; the error names `what` and the last value seen. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err: unknown) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError instanceof Error ? lastError.message : String(lastError)}` : ''}`,
      );
    }
    await sleep(everyMs);
  }
}

export class FleetApi {
  constructor(
    readonly baseUrl: string,
    private readonly key: string,
    private readonly fetchFn: FetchFn = (url, init) => fetch(url, init),
  ) {}

  async request<T>(method: string, path: string, body?: unknown, expected?: number): Promise<ApiAnswer<T>> {
    const res = await this.fetchFn(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const parsed = (text ? JSON.parse(text) : undefined) as T;
    if (expected !== undefined && res.status !== expected)
      throw new Error(`${method} ${path}: HTTP ${res.status} (expected ${expected}): ${text.slice(0, 500)}`);
    return { status: res.status, body: parsed };
  }

  /** One sample of the Prometheus text at /metrics (the series with exactly these labels), or undefined when absent. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const res = await this.fetchFn(`${this.baseUrl}/metrics`, { headers: { authorization: `Bearer ${this.key}` } });
    const wanted = Object.entries(labels)
      .map(([k, v]) => `${k}="${v}"`)
      .sort()
      .join(',');
    for (const line of (await res.text()).split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
      if (have === wanted) return Number(m[3]);
    }
    return undefined;
  }

  /**
   * A token for a whole test fleet: unlimited uses (tokens enroll one device unless told
   * otherwise), and `deviceTagKeys` for the tags the test's devices set themselves at enrollment.
   */
  async createEnrollmentToken(name: string, tags?: Record<string, string>, options: { deviceTagKeys?: string[] } = {}): Promise<string> {
    const res = await this.request<{ token: string }>(
      'POST',
      '/api/v1/enrollment-tokens',
      { name, unlimited: true, ...(tags ? { tags } : {}), ...(options.deviceTagKeys ? { deviceTagKeys: options.deviceTagKeys } : {}) },
      201,
    );
    return res.body.token;
  }

  async createModel(name: string): Promise<void> {
    await this.request('POST', '/api/v1/models', { name }, 201);
  }

  /** `POST /api/v1/models/{name}/versions` as multipart: version, metadata JSON, one file. */
  async uploadVersion(model: string, version: string, file: { name: string; bytes: Uint8Array }, metadata: Record<string, unknown>): Promise<UploadedVersion> {
    return this.uploadFiles(model, version, [file], metadata);
  }

  /** A version of several files (e.g. one per build, with `metadata.variants`). */
  async uploadFiles(model: string, version: string, files: { name: string; bytes: Uint8Array }[], metadata: Record<string, unknown>): Promise<UploadedVersion> {
    const form = new FormData();
    form.append('version', version);
    form.append('metadata', JSON.stringify(metadata));
    for (const file of files) form.append('file', new Blob([file.bytes]), file.name);
    // Encoded here (boundary and all) so any fetch, also one trusting a test CA, can send it.
    const encoded = new Response(form);
    const res = await this.fetchFn(`${this.baseUrl}/api/v1/models/${model}/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.key}`, 'content-type': encoded.headers.get('content-type')! },
      body: new Uint8Array(await encoded.arrayBuffer()),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`upload ${model}@${version}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    return JSON.parse(text) as UploadedVersion;
  }

  async assign(deviceId: string, model: string, version: string): Promise<number> {
    const res = await this.request<{ revision: number }>('PUT', `/api/v1/devices/${deviceId}/models/${model}`, { version }, 200);
    return res.body.revision;
  }

  async device(id: string): Promise<DeviceView> {
    return (await this.request<DeviceView>('GET', `/api/v1/devices/${id}`, undefined, 200)).body;
  }

  async deviceModel(id: string, model: string): Promise<DeviceModelView | undefined> {
    return (await this.device(id)).models.find((m) => m.model === model);
  }

  async fleetSummary(): Promise<FleetSummaryView> {
    return (await this.request<FleetSummaryView>('GET', '/api/v1/fleet/summary', undefined, 200)).body;
  }

  /** Waits until the control plane shows `model` on `deviceId` reported in `state` for `version`. */
  async waitForReport(deviceId: string, model: string, version: string, state: string, timeoutMs = 30_000): Promise<DeviceModelView> {
    let last: DeviceModelView | undefined;
    try {
      return await waitFor(
        `${deviceId} ${model}@${version} ${state}`,
        async () => {
          last = await this.deviceModel(deviceId, model);
          return last && last.reportedVersion === version && last.reportedState === state ? last : undefined;
        },
        timeoutMs,
        150,
      );
    } catch (err: unknown) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last seen ${JSON.stringify(last)}`, { cause: err });
    }
  }
}

export interface FleetlineUnderTest {
  cp: ControlPlaneProcess;
  api: FleetApi;
  close(): Promise<void>;
}

/** Starts the built control plane on a scratch database (PostgreSQL with DATABASE_URL, else PGlite). */
export async function startFleetline(env: Record<string, string> = {}, options: { ca?: string } = {}): Promise<FleetlineUnderTest> {
  const db: ScratchDatabase | undefined = await scratchDatabase();
  let cp: ControlPlaneProcess;
  try {
    cp = await startControlPlane({ ...(db ? { databaseUrl: db.url } : {}), env, ...options });
  } catch (err: unknown) {
    await db?.drop();
    throw err;
  }
  return {
    cp,
    api: new FleetApi(cp.baseUrl, cp.adminKey, cp.fetch),
    async close(): Promise<void> {
      await cp.stop();
      await db?.drop();
    },
  };
}

/**
 * The file the control plane's artifact store keeps for `bytes` (found by content, so the test
 * does not depend on how storage keys are derived). Used to tamper with an artifact on disk.
 */
export async function findStoredArtifact(dataDir: string, expectedSha256: string, length: number): Promise<string> {
  const root = join(dataDir, 'artifacts');
  const walk = async (dir: string): Promise<string | undefined> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = await walk(path);
        if (found) return found;
      } else if (entry.isFile() && (await stat(path)).size === length && sha256(await readFile(path)) === expectedSha256) {
        return path;
      }
    }
    return undefined;
  };
  const found = await walk(root);
  if (!found) throw new Error(`no stored artifact with sha256 ${expectedSha256} under ${root}`);
  return found;
}
