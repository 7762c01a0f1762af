import { type KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { isErrnoCode } from '../storage/atomic-file.js';

/**
 * `{dataDir}/agent.json`, overridable per field with FLEET_AGENT_* environment variables
 * (e.g. FLEET_AGENT_LOCAL_API_PORT=0). Validated at start; a bad value exits non-zero naming the field.
 */
export const agentConfigSchema = z
  .object({
    /** Hardware class reported in the inventory and matched against compatibility.hardwareClasses. */
    hardwareClass: z.string().min(1).max(64).default(os.machine()),
    accelerators: z.array(z.string().min(1).max(64)).max(16).default([]),
    localApi: z
      .object({
        /**
         * `unix` (the default on Linux): a Unix socket whose file mode decides who may use the API.
         * `tcp`: loopback TCP, which every local process can reach. Without it, a socketPath means unix.
         */
        transport: z.enum(['unix', 'tcp']).optional(),
        /** TCP port on 127.0.0.1; 0 picks a free port. Used with transport tcp only. */
        port: z.number().int().min(0).max(65535).default(7878),
        host: z.string().default('127.0.0.1'),
        /** Default: $RUNTIME_DIRECTORY/local-api.sock (systemd's RuntimeDirectory=), else {dataDir}/local-api.sock. */
        socketPath: z.string().min(1).optional(),
        /** 0660: the agent's user and group (put the application's user in the group); 0600: the agent's user only. */
        socketMode: z.enum(['0660', '0600']).default('0660'),
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    telemetryIntervalSeconds: z.number().int().min(1).max(86_400).default(60),
    healthCheckTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
    /** Download deadline when an assignment has no timeoutSeconds. */
    updateTimeoutSeconds: z
      .number()
      .int()
      .min(10)
      .max(7 * 86_400)
      .default(3600),
    maxActivationRestarts: z.number().int().min(1).max(100).default(3),
    runtimes: z
      .object({
        onnx: z.object({ enabled: z.boolean().default(true) }).prefault({}),
        command: z
          .object({
            /** Health-check executable, run as `{command} ...args {modelPath}`. */
            command: z.string().min(1),
            args: z.array(z.string()).default([]),
            timeoutSeconds: z.number().int().min(1).max(3600).default(60),
            version: z.string().default('1.0.0'),
          })
          .optional(),
      })
      .prefault({}),
    queues: z
      .object({
        reportsMaxItems: z.number().int().min(1).default(1000),
        telemetryMaxItems: z.number().int().min(1).default(2000),
        telemetryMaxBytes: z.number().int().min(1024).default(4_000_000),
      })
      .prefault({}),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    /**
     * PEM CA bundle the control plane's certificate must chain to, on HTTPS and mqtts:// / wss://.
     * Unset: the CA stored at enrollment (--ca-file, or the enrollment answer's), else the system's.
     */
    caFile: z.string().min(1).optional(),
    /**
     * PEM client certificate and its unencrypted private key, presented on mqtts:// and wss:// (the
     * broker's MQTT_TLS_CLIENT_CA_FILE): with a certificate registered for this device the broker
     * lets it in without its secret. Both or neither.
     */
    mqttClientCertFile: z.string().min(1).optional(),
    mqttClientKeyFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((c) => (c.mqttClientCertFile === undefined) === (c.mqttClientKeyFile === undefined), {
    message: 'set both mqttClientCertFile and mqttClientKeyFile, or neither',
    path: ['mqttClientKeyFile'],
  });
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid agent config: ${field}: ${message}`);
  }
}

/** Env var -> config path. Values are parsed as JSON when possible (numbers, booleans, arrays). */
const ENV_MAP: Record<string, string[]> = {
  FLEET_AGENT_HARDWARE_CLASS: ['hardwareClass'],
  FLEET_AGENT_ACCELERATORS: ['accelerators'],
  FLEET_AGENT_LOCAL_API_PORT: ['localApi', 'port'],
  FLEET_AGENT_LOCAL_API_HOST: ['localApi', 'host'],
  FLEET_AGENT_LOCAL_API_SOCKET: ['localApi', 'socketPath'],
  FLEET_AGENT_LOCAL_API_TRANSPORT: ['localApi', 'transport'],
  FLEET_AGENT_LOCAL_API_SOCKET_MODE: ['localApi', 'socketMode'],
  FLEET_AGENT_LOCAL_API_ENABLED: ['localApi', 'enabled'],
  FLEET_AGENT_TELEMETRY_INTERVAL_SECONDS: ['telemetryIntervalSeconds'],
  FLEET_AGENT_HEALTH_CHECK_TIMEOUT_SECONDS: ['healthCheckTimeoutSeconds'],
  FLEET_AGENT_UPDATE_TIMEOUT_SECONDS: ['updateTimeoutSeconds'],
  FLEET_AGENT_MAX_ACTIVATION_RESTARTS: ['maxActivationRestarts'],
  FLEET_AGENT_HEALTH_COMMAND: ['runtimes', 'command', 'command'],
  FLEET_AGENT_ONNX_ENABLED: ['runtimes', 'onnx', 'enabled'],
  FLEET_AGENT_LOG_LEVEL: ['logLevel'],
  FLEET_AGENT_CA_FILE: ['caFile'],
  FLEET_AGENT_MQTT_CLIENT_CERT_FILE: ['mqttClientCertFile'],
  FLEET_AGENT_MQTT_CLIENT_KEY_FILE: ['mqttClientKeyFile'],
};

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    // Comma lists for array fields; plain strings otherwise.
    return raw.includes(',') ? raw.split(',').map((s) => s.trim()) : raw;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const child = node[key];
    if (typeof child !== 'object' || child === null || Array.isArray(child)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Validates raw config + env overrides. Pure (env passed in) so it is unit-testable. */
export function parseAgentConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): AgentConfig {
  const merged: Record<string, unknown> = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : {};
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) throw new ConfigError('(root)', 'must be a JSON object');
  for (const [name, path] of Object.entries(ENV_MAP)) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      let value = parseEnvValue(v);
      if (path.join('.') === 'accelerators' && typeof value === 'string') value = [value];
      if (
        [
          'hardwareClass',
          'localApi.host',
          'localApi.socketPath',
          'localApi.transport',
          'localApi.socketMode',
          'runtimes.command.command',
          'caFile',
          'mqttClientCertFile',
          'mqttClientKeyFile',
        ].includes(path.join('.'))
      )
        value = v;
      setPath(merged, path, value);
    }
  }
  const result = agentConfigSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join('.') || '(root)', issue.message);
  }
  return result.data;
}

export type LocalApiListen = { transport: 'unix'; socketPath: string; socketMode: number } | { transport: 'tcp'; port: number; host: string };

/**
 * Where the local API listens. Pure (platform and environment passed in): a Unix socket on Linux
 * unless tcp is asked for, in systemd's runtime directory when there is one (outside the 0700 data
 * dir, so the application's user can reach it through the group), else in the data dir.
 */
export function localApiListen(config: AgentConfig['localApi'], dataDir: string, platform: NodeJS.Platform, env: NodeJS.ProcessEnv): LocalApiListen {
  const transport = config.transport ?? (config.socketPath !== undefined || platform === 'linux' ? 'unix' : 'tcp');
  if (transport === 'tcp') return { transport, port: config.port, host: config.host };
  const runtimeDir = env['RUNTIME_DIRECTORY']?.split(':')[0];
  const socketPath = config.socketPath ?? join(runtimeDir || dataDir, 'local-api.sock');
  return { transport, socketPath, socketMode: parseInt(config.socketMode, 8) };
}

export async function loadAgentConfig(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<AgentConfig> {
  let raw: unknown = {};
  try {
    raw = JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8'));
  } catch (err: unknown) {
    if (!isErrnoCode(err, 'ENOENT')) {
      if (err instanceof SyntaxError) throw new ConfigError('(file)', `agent.json is not valid JSON: ${err.message}`);
      throw err;
    }
  }
  return parseAgentConfig(raw, env);
}

/**
 * Reads the MQTT client certificate and key (mqttClientCertFile, mqttClientKeyFile): unreadable
 * files, a certificate that does not parse or a key that is not its key are configuration errors,
 * found at start rather than as refused connections.
 */
export async function readClientCertificate(certPath: string, keyPath: string): Promise<{ cert: string; key: string }> {
  const read = async (path: string, field: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err: unknown) {
      throw new ConfigError(field, `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const [cert, key] = [await read(certPath, 'mqttClientCertFile'), await read(keyPath, 'mqttClientKeyFile')];
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err: unknown) {
    throw new ConfigError('mqttClientCertFile', `${certPath} is not a PEM certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err: unknown) {
    throw new ConfigError('mqttClientKeyFile', `${keyPath} is not an unencrypted PEM private key: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new ConfigError('mqttClientKeyFile', `${keyPath} is not the key of ${certPath}`);
  return { cert, key };
}

/**
 * Reads a PEM CA bundle (caFile, --ca-file). A file that cannot be read or holds no certificate
 * is a configuration error: connecting with the system's trust store instead would fail later, or
 * trust more than meant.
 */
export async function readCaFile(path: string, field = 'caFile'): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(field, `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(field, `${path} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err: unknown) {
      throw new ConfigError(field, `${path}: a certificate does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return pem;
}
