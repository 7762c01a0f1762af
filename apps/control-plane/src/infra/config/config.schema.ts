import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { type TlsFiles, TlsMaterialError, readTlsMaterial } from '../tls/tls-material.js';
import { LOG_LEVELS, type LogFormat, resolveLogFormat } from '../logging/log-format.js';

/** Default TUF_BIN_COUNT; docs/tuf.md "Hash bins" has the bytes per device update it gives. */
export const DEFAULT_TUF_BIN_COUNT = 256;

const port = (fallback: number) =>
  z.coerce.number({ error: 'must be a port number' }).int('must be an integer').min(0, 'must be 0-65535').max(65535, 'must be 0-65535').default(fallback);

const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL with one of ${protocols.join(', ')}`,
  );

const optionalString = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

const booleanFlag = (fallback: boolean) =>
  z.preprocess(
    (v) => (v === undefined || v === '' ? String(fallback) : String(v).trim().toLowerCase()),
    z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }).transform((v) => v === 'true' || v === '1' || v === 'yes'),
  );

/**
 * Environment variables the control plane reads. Everything is validated once at start-up;
 * a bad value stops the process with a message naming the variable (see loadConfig).
 */
export const envSchema = z.object({
  PORT: port(3000),
  HOST: z.string().default('0.0.0.0'),
  /** Embedded broker TCP port. Ignored when MQTT_URL is set. */
  MQTT_PORT: port(1883),
  /** Embedded broker WebSocket port; unset disables WebSocket. */
  MQTT_WS_PORT: z.preprocess((v) => (v === '' ? undefined : v), port(0).optional()),
  /** Embedded broker MQTT-over-TLS port, listening when TLS_CERT_FILE and TLS_KEY_FILE are set. */
  MQTT_TLS_PORT: port(8883),
  /** Embedded broker MQTT over secure WebSocket port (TLS on); unset disables it. */
  MQTT_WSS_PORT: z.preprocess((v) => (v === '' ? undefined : v), port(0).optional()),
  /** false: no plain MQTT listener (MQTT_PORT, MQTT_WS_PORT) at all; needs TLS on. */
  MQTT_PLAIN: booleanFlag(true),
  /** PEM certificate (chain) the HTTP server (HTTPS then) and the broker's TLS listeners present. */
  TLS_CERT_FILE: optionalString,
  /** PEM private key of TLS_CERT_FILE (unencrypted). */
  TLS_KEY_FILE: optionalString,
  /** PEM CA bundle handed to devices at enrollment, to verify this server's certificate with. */
  TLS_CA_FILE: optionalString,
  /**
   * PEM CA bundle device client certificates must chain to. Set: the embedded broker's TLS
   * listeners ask for a client certificate, and a device presenting one that chains to it, names its
   * id (CN or SAN) and is registered for it is let in without its secret (docs/security.md).
   */
  MQTT_TLS_CLIENT_CA_FILE: optionalString,
  /** Milliseconds between checks of the TLS files for a change (0: reload on SIGHUP only). */
  TLS_WATCH_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_URL: z.preprocess((v) => (v === '' ? undefined : v), url(['postgres:', 'postgresql:']).optional()),
  /**
   * PostgreSQL connections this replica's pool may open (plus one for the rollout driver lease).
   * Every replica counts against the server's max_connections (100 by default): replicas x (pool + 1)
   * must stay below it, or put PgBouncer in front.
   */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(500).default(20),
  /** External broker (Mosquitto, EMQX). When set, no embedded broker runs. */
  MQTT_URL: z.preprocess((v) => (v === '' ? undefined : v), url(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:']).optional()),
  MQTT_USERNAME: optionalString,
  MQTT_PASSWORD: optionalString,
  /** MQTT 5 shared-subscription group for several replicas on an external broker ($share/<group>/...). */
  MQTT_SHARED_GROUP: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .optional(),
  ),
  /**
   * Broker URLs handed to devices at enrollment, comma-separated (every replica's or broker node's
   * address; a device starts at one picked by its id and moves on when it cannot connect). Defaults
   * to the embedded broker's address or MQTT_URL.
   */
  MQTT_PUBLIC_URL: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? v.split(',').map((u) => u.trim()) : undefined),
    z
      .array(url(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:']))
      .min(1)
      .max(64)
      .optional(),
  ),
  /**
   * Redis for several control-plane replicas with their own embedded brokers: messages to a device
   * connected to another replica go through Redis pub/sub, and the per-source rate limits
   * (ENROLL_RATE_*, DEVICE_AUTH_FAILURES_*) are kept there, shared by all replicas. Unset: one
   * replica (or an external broker).
   */
  REDIS_URL: z.preprocess((v) => (v === '' ? undefined : v), url(['redis:', 'rediss:']).optional()),
  /** Stable name of this replica (its devices are marked offline under it if it crashes). Default: host name + pid. */
  REPLICA_ID: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 chars of [A-Za-z0-9_.-]')
      .optional(),
  ),
  /** Base URL handed to devices for artifact downloads; defaults to http://<host>:PORT. */
  PUBLIC_URL: z.preprocess((v) => (v === '' ? undefined : v), url(['http:', 'https:']).optional()),
  /**
   * Shared secret an external broker presents to the HTTP auth endpoints (/api/v1/broker-auth/...):
   * `Authorization: Bearer <secret>`, or HTTP Basic with the secret as password. Unset: endpoints off.
   * URL-safe characters only, so it also fits a broker config that carries it in a URL (mosquitto-go-auth).
   */
  BROKER_AUTH_SECRET: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .min(24, 'must be at least 24 characters')
      .regex(/^[A-Za-z0-9._~-]+$/, 'must use only URL-safe characters (A-Z a-z 0-9 . _ ~ -)')
      .optional(),
  ),
  /** First admin API key. Without it, one is generated on first start and printed once. */
  FLEET_ADMIN_KEY: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(24, 'must be at least 24 characters').optional()),
  /** Largest MQTT packet the embedded broker accepts, in bytes (MQTT 3.1.1 §2.2.3 allows up to 256 MB). */
  MQTT_MAX_PACKET_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(268_435_455)
    .default(256 * 1024),
  /**
   * Most CONNECTs one replica's embedded broker authenticates at once. Past it a CONNECT is refused
   * at once with "server unavailable" and the device backs off and retries, so a fleet reconnecting
   * all at once cannot queue more work than the replica finishes within the devices' connect timeout.
   */
  MQTT_MAX_PENDING_CONNECTS: z.coerce.number().int().min(1).max(100_000).default(256),
  /** Milliseconds the embedded broker waits for a slow client's socket to drain before dropping it. */
  MQTT_DRAIN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** Largest artifact upload, in bytes. */
  MAX_ARTIFACT_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(10 * 1024 * 1024 * 1024),
  /**
   * Largest JSON request body, in bytes. Parsed before authentication, so it bounds what an
   * anonymous caller can make the process buffer. Uploads stream and use MAX_ARTIFACT_BYTES instead.
   */
  HTTP_JSON_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(1024 * 1024),
  /**
   * Milliseconds a request may take from its first byte to its answer (a slow body included);
   * then it is answered 408 and its connection closed. Uploads and Server-Sent Events streams are exempt.
   */
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /**
   * Express "trust proxy": which proxies' X-Forwarded-For names the client. Unset: the socket's
   * peer is the source address of the per-source rate limits. Behind a load balancer set it (e.g.
   * "loopback", "10.0.0.0/8", or a hop count), or every device counts as the balancer's address.
   */
  HTTP_TRUST_PROXY: optionalString,
  /** Enrollment requests per second per source address (0: no limit), and the burst allowed. */
  ENROLL_RATE_PER_SECOND: z.coerce.number().min(0).max(100_000).default(5),
  ENROLL_RATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(100),
  /** Failed device authentications (HTTP and embedded MQTT) per second per source address (0: no limit), and the burst. */
  DEVICE_AUTH_FAILURES_PER_SECOND: z.coerce.number().min(0).max(100_000).default(0.2),
  DEVICE_AUTH_FAILURES_BURST: z.coerce.number().int().min(1).max(1_000_000).default(20),
  /** Refused API calls (401/403) written to the audit log per second per source address, and the burst; the rest are counted. */
  AUDIT_REFUSALS_PER_SECOND: z.coerce.number().min(0).max(100_000).default(1),
  AUDIT_REFUSALS_BURST: z.coerce.number().int().min(1).max(1_000_000).default(20),
  /**
   * Seconds an enrollment token lives unless its creator says otherwise (expiresInSeconds).
   * Default 7 days.
   */
  ENROLLMENT_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(10 * 365 * 86_400)
    .default(7 * 86_400),
  /**
   * Which artifacts a device may download: `assigned` (versions it has desired or active, or that
   * an active rollout targets it with) or `fleet` (every artifact, the behaviour before 0.2).
   */
  ARTIFACT_ACCESS: z.enum(['assigned', 'fleet']).default('assigned'),
  /**
   * Most artifact downloads one replica streams at once. Past it a download is answered 503 with
   * Retry-After before its credentials are checked, and the device waits and resumes: a fleet
   * whose downloads all restart at once (a replica came back mid-rollout) cannot take the CPU that
   * its MQTT reconnects and reports need.
   */
  ARTIFACT_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(256),
  /**
   * Memory, in MB, for the bytes of small artifacts (up to 1 MB each) that devices are downloading,
   * so a wave asking for the same file is served without file I/O per download. 0: always stream.
   */
  ARTIFACT_MEMORY_CACHE_MB: z.coerce.number().int().min(0).max(65_536).default(64),
  /** Retry-After, in seconds, of a download refused as busy (devices add jitter on top). */
  ARTIFACT_BUSY_RETRY_SECONDS: z.coerce.number().int().min(1).max(3600).default(2),
  /** Seconds between rollout engine ticks. */
  ROLLOUT_TICK_SECONDS: z.coerce.number().min(0.1).max(3600).default(2),
  /**
   * Devices one rollout may have between notice and outcome (notified, downloading, installing) when
   * its spec sets no maxInFlight; 0 for no bound. Every told device sends its reports and fetches
   * its artifact at once: an unbounded wave of 100,000 asks the replicas to store 100,000 reports in
   * the same seconds, and devices whose acknowledgements wait past their keepalive drop off.
   */
  ROLLOUT_MAX_IN_FLIGHT: z.coerce.number().int().min(0).max(10_000_000).default(10_000),
  /** Days of raw telemetry kept. */
  TELEMETRY_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(14),
  /** Most inferences per second of its interval one telemetry message may claim; more is refused (a broken or lying agent). */
  TELEMETRY_MAX_INFERENCES_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  /** Longest interval one telemetry message may cover, in seconds (agents close one every minute by default). */
  TELEMETRY_MAX_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(3_600),
  /** How far in the future (device clock ahead of ours) a message's interval may end, in seconds. */
  TELEMETRY_MAX_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  /** Largest jump of a device's telemetry seq over its last stored one for the same model version. */
  TELEMETRY_MAX_SEQ_GAP: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(100_000),
  /**
   * Longest a telemetry sample waits for others to share its database write, in milliseconds. Every
   * sample's PUBACK waits for its batch to commit, so this is latency per message (batches grow on
   * their own while a write is in progress).
   */
  TELEMETRY_BATCH_DELAY_MS: z.coerce.number().int().min(0).max(1000).default(10),
  /** Telemetry batches written at once (the database works on one while the next is decoded). */
  TELEMETRY_WRITERS: z.coerce.number().int().min(1).max(16).default(2),
  /** A device's weight in a cohort's gate statistics is capped at this many times the median device's inference count. */
  TELEMETRY_DEVICE_WEIGHT_FACTOR: z.coerce.number().min(1).max(1_000_000).default(10),
  /**
   * Where the TUF root and targets keys live. `online` (default, local development): this server
   * generates and holds all four keys. `offline` (production): it holds only the snapshot and
   * timestamp keys; root and targets are signed on the operator's machine with fleetctl, and
   * uploaded versions wait for a targets signature (docs/tuf.md).
   */
  TUF_KEYS: z.enum(['online', 'offline'], { error: 'must be online or offline' }).default('online'),
  /**
   * Hash bins the targets are spread over (TAP 15 succinct delegation, docs/tuf.md "Hash bins"): a
   * device update downloads the snapshot (about 30 bytes per bin) and one bin (the catalogue
   * divided by this). Same value on every replica.
   */
  TUF_BIN_COUNT: z.coerce
    .number({ error: 'must be a power of two between 2 and 65536' })
    .int('must be a power of two between 2 and 65536')
    .refine((n) => n >= 2 && n <= 65_536 && (n & (n - 1)) === 0, 'must be a power of two between 2 and 65536')
    .default(DEFAULT_TUF_BIN_COUNT),
  LOG_LEVEL: z.preprocess((v) => (v === '' ? undefined : v), z.enum(LOG_LEVELS).default('log')),
  /** `json` (one object a line) or `pretty`; unset: json when NODE_ENV=production, pretty otherwise. */
  LOG_FORMAT: z.preprocess((v) => (v === '' ? undefined : v), z.enum(['json', 'pretty']).optional()),
  NODE_ENV: z.string().optional(),
});

export type Env = z.infer<typeof envSchema>;

/** Bounds on what one device's telemetry may claim (telemetry/ingest/telemetry-bounds.ts applies them). */
export interface TelemetryLimits {
  maxInferencesPerSecond: number;
  maxIntervalSeconds: number;
  maxClockSkewSeconds: number;
  maxSeqGap: number;
  deviceWeightFactor: number;
}

interface Bucket {
  burst: number;
  perSecond: number;
}

export interface AppConfig {
  /** With `tls` set, the HTTP server on `port` speaks HTTPS. */
  http: { port: number; host: string; publicUrl?: string };
  /** Set: HTTPS, and the embedded broker's TLS listeners, serve these files (reloaded when they change). */
  tls?: TlsFiles & { watchIntervalMs: number };
  dataDir: string;
  database: { kind: 'postgres'; url: string; poolSize: number } | { kind: 'pglite'; dir: string };
  mqtt:
    | {
        kind: 'embedded';
        port: number;
        wsPort?: number;
        /** MQTT over TLS (TLS on only). */
        tlsPort?: number;
        /** MQTT over secure WebSocket (TLS on only). */
        wssPort?: number;
        /** false: the plain TCP and WebSocket listeners are off. */
        plain: boolean;
        publicUrls?: string[];
        maxPacketBytes: number;
        drainTimeoutMs: number;
        maxPendingConnects: number;
        /** Set: clustered embedded brokers routed through Redis. */
        redisUrl?: string;
      }
    | { kind: 'external'; url: string; username?: string; password?: string; sharedGroup?: string; publicUrls?: string[] };
  /** Names this process among the control-plane replicas. */
  replicaId: string;
  /** REPLICA_ID was set: the name survives restarts (what persistent broker sessions need). */
  replicaIdStable: boolean;
  adminKey?: string;
  /** Secret of the broker-facing auth endpoints; undefined disables them. */
  brokerAuthSecret?: string;
  maxArtifactBytes: number;
  /** Request limits of the HTTP API (see HTTP_JSON_LIMIT_BYTES, HTTP_REQUEST_TIMEOUT_MS). */
  httpLimits: { jsonBytes: number; requestTimeoutMs: number; trustProxy?: string };
  /** Per-source token buckets; enroll and deviceAuthFailures are kept in `shared` when set (REDIS_URL), auditRefusals always per replica. */
  rateLimits: { enroll: Bucket; deviceAuthFailures: Bucket; auditRefusals: Bucket; shared?: { redisUrl: string; keyPrefix?: string } };
  enrollmentTokenTtlSeconds: number;
  artifactAccess: 'assigned' | 'fleet';
  /** Bound on artifact streams (ARTIFACT_MAX_STREAMS, ARTIFACT_BUSY_RETRY_SECONDS); unset in tests that build a config by hand. */
  downloadAdmission?: { maxStreams: number; busyRetrySeconds: number };
  /** ARTIFACT_MEMORY_CACHE_MB in bytes; unset in tests that build a config by hand. */
  artifactMemoryCacheBytes?: number;
  rolloutTickSeconds: number;
  /** ROLLOUT_MAX_IN_FLIGHT (0: none); unset in tests that build a config by hand (no bound). */
  rolloutMaxInFlight?: number;
  telemetryRetentionDays: number;
  telemetryLimits: TelemetryLimits;
  /** Group commit of telemetry (TELEMETRY_BATCH_DELAY_MS, TELEMETRY_WRITERS); unset in tests that build a config by hand. */
  telemetryBatch?: { maxDelayMs: number; writers: number };
  /** offline: root and targets are signed by the operator (fleetctl), never on this server. */
  tufKeys: 'online' | 'offline';
  /** TUF_BIN_COUNT; unset in tests that build a config by hand (DEFAULT_TUF_BIN_COUNT). */
  tufBinCount?: number;
  logLevel: Env['LOG_LEVEL'];
  logFormat: LogFormat;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment. Throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const e = parsed.data;
  if (e.REDIS_URL && e.MQTT_URL) {
    throw new ConfigError(['REDIS_URL: routes between embedded brokers; with MQTT_URL the external broker cluster routes messages, so unset one of them']);
  }
  const tls = tlsConfig(e);
  if (!e.MQTT_PLAIN && !tls) throw new ConfigError(['MQTT_PLAIN: false turns off the only MQTT listener; set TLS_CERT_FILE and TLS_KEY_FILE too']);
  if (e.MQTT_WSS_PORT !== undefined && !tls) throw new ConfigError(['MQTT_WSS_PORT: secure WebSocket needs TLS_CERT_FILE and TLS_KEY_FILE']);
  if (e.MQTT_TLS_CLIENT_CA_FILE && e.MQTT_URL)
    throw new ConfigError([
      'MQTT_TLS_CLIENT_CA_FILE: client certificates are checked by the embedded broker; with MQTT_URL configure them on the external broker',
    ]);
  const dataDir = isAbsolute(e.DATA_DIR) ? e.DATA_DIR : resolve(process.cwd(), e.DATA_DIR);
  return {
    http: { port: e.PORT, host: e.HOST, publicUrl: e.PUBLIC_URL },
    ...(tls ? { tls } : {}),
    dataDir,
    database: e.DATABASE_URL ? { kind: 'postgres', url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE } : { kind: 'pglite', dir: resolve(dataDir, 'pglite') },
    mqtt: e.MQTT_URL
      ? {
          kind: 'external',
          url: e.MQTT_URL,
          username: e.MQTT_USERNAME,
          password: e.MQTT_PASSWORD,
          sharedGroup: e.MQTT_SHARED_GROUP,
          publicUrls: e.MQTT_PUBLIC_URL,
        }
      : {
          kind: 'embedded',
          port: e.MQTT_PORT,
          wsPort: e.MQTT_WS_PORT,
          ...(tls ? { tlsPort: e.MQTT_TLS_PORT, ...(e.MQTT_WSS_PORT !== undefined ? { wssPort: e.MQTT_WSS_PORT } : {}) } : {}),
          plain: e.MQTT_PLAIN,
          publicUrls: e.MQTT_PUBLIC_URL,
          redisUrl: e.REDIS_URL,
          maxPacketBytes: e.MQTT_MAX_PACKET_BYTES,
          drainTimeoutMs: e.MQTT_DRAIN_TIMEOUT_MS,
          maxPendingConnects: e.MQTT_MAX_PENDING_CONNECTS,
        },
    replicaId: e.REPLICA_ID ?? defaultReplicaId(),
    replicaIdStable: e.REPLICA_ID !== undefined,
    adminKey: e.FLEET_ADMIN_KEY,
    brokerAuthSecret: e.BROKER_AUTH_SECRET,
    maxArtifactBytes: e.MAX_ARTIFACT_BYTES,
    httpLimits: { jsonBytes: e.HTTP_JSON_LIMIT_BYTES, requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS, trustProxy: e.HTTP_TRUST_PROXY },
    rateLimits: {
      enroll: { perSecond: e.ENROLL_RATE_PER_SECOND, burst: e.ENROLL_RATE_BURST },
      deviceAuthFailures: { perSecond: e.DEVICE_AUTH_FAILURES_PER_SECOND, burst: e.DEVICE_AUTH_FAILURES_BURST },
      auditRefusals: { perSecond: e.AUDIT_REFUSALS_PER_SECOND, burst: e.AUDIT_REFUSALS_BURST },
      ...(e.REDIS_URL ? { shared: { redisUrl: e.REDIS_URL } } : {}),
    },
    enrollmentTokenTtlSeconds: e.ENROLLMENT_TOKEN_TTL_SECONDS,
    artifactAccess: e.ARTIFACT_ACCESS,
    downloadAdmission: { maxStreams: e.ARTIFACT_MAX_STREAMS, busyRetrySeconds: e.ARTIFACT_BUSY_RETRY_SECONDS },
    artifactMemoryCacheBytes: e.ARTIFACT_MEMORY_CACHE_MB * 1024 * 1024,
    rolloutTickSeconds: e.ROLLOUT_TICK_SECONDS,
    rolloutMaxInFlight: e.ROLLOUT_MAX_IN_FLIGHT,
    telemetryRetentionDays: e.TELEMETRY_RETENTION_DAYS,
    telemetryBatch: { maxDelayMs: e.TELEMETRY_BATCH_DELAY_MS, writers: e.TELEMETRY_WRITERS },
    telemetryLimits: {
      maxInferencesPerSecond: e.TELEMETRY_MAX_INFERENCES_PER_SECOND,
      maxIntervalSeconds: e.TELEMETRY_MAX_INTERVAL_SECONDS,
      maxClockSkewSeconds: e.TELEMETRY_MAX_CLOCK_SKEW_SECONDS,
      maxSeqGap: e.TELEMETRY_MAX_SEQ_GAP,
      deviceWeightFactor: e.TELEMETRY_DEVICE_WEIGHT_FACTOR,
    },
    tufKeys: e.TUF_KEYS,
    tufBinCount: e.TUF_BIN_COUNT,
    logLevel: e.LOG_LEVEL,
    logFormat: resolveLogFormat(e.LOG_FORMAT, e.NODE_ENV),
  };
}

/**
 * Both files or neither. The files are read and checked here (readable, the key matches the
 * certificate), so a bad one stops the process at start-up, before anything listens.
 */
function tlsConfig(e: Env): AppConfig['tls'] {
  if (!e.TLS_CERT_FILE && !e.TLS_KEY_FILE) {
    if (e.TLS_CA_FILE) throw new ConfigError(['TLS_CA_FILE: set TLS_CERT_FILE and TLS_KEY_FILE too (the CA is handed out only when TLS is on)']);
    if (e.MQTT_TLS_CLIENT_CA_FILE) throw new ConfigError(['MQTT_TLS_CLIENT_CA_FILE: client certificates need TLS: set TLS_CERT_FILE and TLS_KEY_FILE too']);
    return undefined;
  }
  if (!e.TLS_CERT_FILE || !e.TLS_KEY_FILE)
    throw new ConfigError([`${e.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE`]);
  const files: TlsFiles = {
    certFile: resolve(process.cwd(), e.TLS_CERT_FILE),
    keyFile: resolve(process.cwd(), e.TLS_KEY_FILE),
    ...(e.TLS_CA_FILE ? { caFile: resolve(process.cwd(), e.TLS_CA_FILE) } : {}),
    ...(e.MQTT_TLS_CLIENT_CA_FILE ? { clientCaFile: resolve(process.cwd(), e.MQTT_TLS_CLIENT_CA_FILE) } : {}),
  };
  try {
    readTlsMaterial(files);
  } catch (err) {
    if (err instanceof TlsMaterialError) throw new ConfigError([err.message]);
    throw err;
  }
  return { ...files, watchIntervalMs: e.TLS_WATCH_INTERVAL_MS };
}

function defaultReplicaId(): string {
  return `${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 48)}-${process.pid}`;
}
