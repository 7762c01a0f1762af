import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import pg from 'pg';
import { createApp } from '../create-app.js';
import { loadConfig, type AppConfig } from '../infra/config/config.schema.js';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';

export type DatabaseBackend = 'pglite' | 'postgres';

/**
 * Backends every database-backed test runs on: PGlite always, PostgreSQL too when
 * DATABASE_URL is set (CI sets it), so the same migrations are proven on both.
 */
export function databaseBackends(): DatabaseBackend[] {
  return process.env['DATABASE_URL'] ? ['pglite', 'postgres'] : ['pglite'];
}

export interface TestApp {
  app: INestApplication;
  config: AppConfig;
  baseUrl: string;
  mqttUrl: string;
  adminKey: string;
  dataDir: string;
  databaseUrl?: string;
  close(): Promise<void>;
}

/** Creates a fresh, empty PostgreSQL database next to DATABASE_URL's and returns its URL. */
export async function createScratchDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = process.env['DATABASE_URL'];
  if (!base) throw new Error('DATABASE_URL is not set');
  const name = `fleetline_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Starts the real control plane in this process on ephemeral ports (HTTP and embedded MQTT),
 * with a fresh data dir and a fresh database. Nothing is mocked.
 */
export async function startTestApp(backend: DatabaseBackend, env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-test-'));
  const scratch = backend === 'postgres' ? await createScratchDatabase() : undefined;
  const adminKey = `flk_test_${randomBytes(24).toString('base64url')}`;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    MQTT_PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL: scratch?.url ?? '',
    FLEET_ADMIN_KEY: adminKey,
    LOG_LEVEL: 'warn',
    ROLLOUT_TICK_SECONDS: '0.5',
    ...env,
  });
  const app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  const baseUrl = `${config.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`;
  const mqttUrl = app.get(MqttGateway).publicUrl();
  return {
    app,
    config,
    baseUrl,
    mqttUrl,
    adminKey,
    dataDir,
    databaseUrl: scratch?.url,
    close: async () => {
      await app.close();
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

/** Minimal JSON client for the admin API in tests. */
export function apiClient(baseUrl: string, key?: string) {
  const request = async <T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // non-JSON bodies (artifacts, metrics) stay text
    }
    return { status: response.status, body: parsed as T, headers: response.headers };
  };
  return {
    get: <T = unknown>(path: string, headers?: Record<string, string>) => request<T>('GET', path, undefined, headers),
    post: <T = unknown>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
    put: <T = unknown>(path: string, body?: unknown) => request<T>('PUT', path, body ?? {}),
    patch: <T = unknown>(path: string, body?: unknown) => request<T>('PATCH', path, body ?? {}),
    delete: <T = unknown>(path: string) => request<T>('DELETE', path),
  };
}

export type ApiClient = ReturnType<typeof apiClient>;

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Uploads a small model version through the API (multipart, as operators do); metadata is optional. */
export async function uploadTestVersion(
  t: Pick<TestApp, 'baseUrl' | 'adminKey'>,
  model: string,
  version: string,
  metadata?: Record<string, unknown>,
): Promise<void> {
  const form = new FormData();
  form.append('version', version);
  if (metadata) form.append('metadata', JSON.stringify(metadata));
  form.append('file', new Blob([Buffer.from(`weights of ${model} ${version}`)]), 'model.onnx');
  const response = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.adminKey}` },
    body: form,
  });
  if (response.status !== 201) throw new Error(`upload ${model} ${version}: ${response.status} ${await response.text()}`);
}
