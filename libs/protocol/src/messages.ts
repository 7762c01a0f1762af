import { z } from 'zod';
import { DEVICE_ID_PATTERN, MODEL_NAME_PATTERN } from './topics.js';
import { FAILURE_CODES, REPORT_STATES } from './update-state.js';
import { LATENCY_BUCKET_COUNT } from './telemetry.js';
import { PROTOCOL_VERSION } from './version.js';
import { shadowDirectiveSchema, shadowReportSchema } from './shadow.js';

/**
 * Message schemas for every MQTT payload. Both sides decode with these before any side effect;
 * a payload that fails is refused (device side) or dropped, logged and counted (server side).
 * Objects are not strict: a newer peer may add optional fields without breaking an older one.
 */

const protocolVersion = z.literal(PROTOCOL_VERSION);
const semverString = z
  .string()
  .min(5)
  .max(128)
  .regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/, 'must be a semver version');
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex sha256');
const isoTime = z.iso.datetime({ offset: true });
export const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'device id: 1-128 chars of [A-Za-z0-9._:-], starting alphanumeric');
export const modelNameSchema = z.string().regex(MODEL_NAME_PATTERN, 'model name: 1-64 chars of [a-z0-9._-], starting alphanumeric');
/**
 * Name of one build of a model version (e.g. "cpu-fp32", "npu-int8"). A version may ship several
 * builds of the same model; each device runs the best one that fits it (`selectVariant`).
 */
export const variantNameSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'variant: 1-64 chars of [a-z0-9._-], starting alphanumeric');
/** Per-device report sequence: monotonically increasing for the life of the device's data dir. */
const sequence = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Compatibility constraints a device checks before it downloads anything. */
export const compatibilitySchema = z.object({
  /** Hardware classes the artifact runs on; absent or empty means any. */
  hardwareClasses: z.array(z.string().min(1).max(64)).max(64).optional(),
  /** Semver range of the runtime version (e.g. onnxruntime ">=1.17"). */
  runtimeRange: z.string().min(1).max(128).optional(),
  /** Semver range of the agent version (e.g. ">=0.1.0"). */
  agentRange: z.string().min(1).max(128).optional(),
  /** Accelerators the artifact needs (e.g. "cuda"); absent means CPU is fine. */
  accelerators: z.array(z.string().min(1).max(64)).max(16).optional(),
});
export type Compatibility = z.infer<typeof compatibilitySchema>;

export const artifactRefSchema = z.object({
  /** TUF target path; the agent verifies the download against the signed targets metadata for it. */
  targetPath: z.string().min(1).max(512),
  sha256: sha256Hex,
  length: z.number().int().positive(),
  /** Runtime that loads it: "onnx", "command", "simulated", ... */
  runtime: z.string().min(1).max(64),
  framework: z.string().max(64).optional(),
  compatibility: compatibilitySchema.default({}),
  /**
   * The build this file belongs to. Absent: the build named `default` (DEFAULT_VARIANT), so a
   * version uploaded before variants existed is one build made of all its files.
   */
  variant: variantNameSchema.optional(),
});
export type ArtifactRef = z.infer<typeof artifactRefSchema>;

/**
 * The latest update report the control plane has stored for one device and model, carried in the
 * answer to a hello. A device compares it with what it would re-state after reconnecting and sends
 * the report only when they differ (`storedReportMatches`): a fleet reconnecting at once then costs
 * the control plane one hello per device, not a hello plus a report per model. Absent (an older
 * control plane, or no report stored yet): the device re-states the model, as it always did.
 */
export const storedReportSchema = z.object({
  version: semverString,
  revision: z.number().int().nonnegative(),
  state: z.enum(REPORT_STATES),
  activeVersion: semverString.nullable(),
  previousVersion: semverString.nullable(),
});
export type StoredReport = z.infer<typeof storedReportSchema>;

/** True when the stored report says exactly what the device would re-state, so re-stating can be skipped. */
export function storedReportMatches(stored: StoredReport | undefined, current: StoredReport): boolean {
  return (
    stored !== undefined &&
    stored.version === current.version &&
    stored.revision === current.revision &&
    stored.state === current.state &&
    stored.activeVersion === current.activeVersion &&
    stored.previousVersion === current.previousVersion
  );
}

/**
 * Desired state for one model on `desired/{model}` (QoS1, never retained). Sent when an assignment
 * is made and again every time the device says hello, so delivery order is not guaranteed: the
 * device applies a message only when its `revision` is not older than what it already has.
 */
export const desiredModelSchema = z
  .object({
    v: protocolVersion,
    model: modelNameSchema,
    version: semverString,
    /** Server revision of this assignment; the device echoes it in its reports. Monotonic per device and model. */
    revision: z.number().int().nonnegative(),
    /**
     * install: download, verify, activate. download-only: stop at "downloaded" until an install
     * command arrives. shadow: stop at "downloaded", then evaluate the version beside the active one
     * as `shadow` says, without switching (shadow.ts).
     */
    action: z.enum(['install', 'download-only', 'shadow']).default('install'),
    /** Present exactly when `action` is shadow. */
    shadow: shadowDirectiveSchema.optional(),
    /** Present when a rollout made the assignment. */
    rolloutId: z.string().max(64).optional(),
    /** Seconds the device may spend on this update before it gives up (download deadline included). */
    timeoutSeconds: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600)
      .optional(),
    /**
     * The build the control plane chose for this device from its inventory; `artifacts` then holds
     * only that build's files. Absent (older control planes, devices without an inventory): the
     * device picks the build itself from all the artifacts with `selectVariant`.
     */
    variant: variantNameSchema.optional(),
    artifacts: z.array(artifactRefSchema).min(1).max(16),
    assignedAt: isoTime,
    /** In a hello's answer: the latest report stored for this model (see storedReportSchema). */
    stored: storedReportSchema.optional(),
  })
  .refine((d) => (d.action === 'shadow') === (d.shadow !== undefined), {
    message: 'a shadow directive comes with action shadow, and only with it',
    path: ['shadow'],
  });
export type DesiredModel = z.infer<typeof desiredModelSchema>;

/**
 * "This model is no longer assigned", on the same `desired/{model}` topic. It carries the revision
 * of the unassignment so a desired state sent earlier but delivered later cannot bring it back.
 * (An empty payload is still understood as a clear without a revision.)
 */
export const desiredClearedSchema = z.object({
  v: protocolVersion,
  model: modelNameSchema,
  revision: z.number().int().nonnegative(),
  cleared: z.literal(true),
  at: isoTime,
  /** In a hello's answer: the latest report stored for this model (see storedReportSchema). */
  stored: storedReportSchema.optional(),
});
export type DesiredCleared = z.infer<typeof desiredClearedSchema>;

/** What can arrive on `desired/{model}`: a desired state or a clear. */
export const desiredMessageSchema = z.union([desiredClearedSchema, desiredModelSchema]);
export type DesiredMessage = z.infer<typeof desiredMessageSchema>;

export function isDesiredCleared(message: DesiredMessage): message is DesiredCleared {
  return 'cleared' in message && message.cleared === true;
}

/**
 * One update report; sent on every state change, and once more (`removed`) when an unassigned model
 * was removed from the device.
 */
export const updateReportSchema = z
  .object({
    v: protocolVersion,
    seq: sequence,
    model: modelNameSchema,
    /** The version this report is about (the target of the update; for `removed`, the version removed). */
    version: semverString,
    /** Echo of the desired revision being worked on (for `removed`, the revision of the unassignment). */
    revision: z.number().int().nonnegative(),
    state: z.enum(REPORT_STATES),
    /** The version that is active on the device right now (may differ from `version` mid-update). */
    activeVersion: semverString.nullable(),
    /** Last-known-good version kept for rollback. */
    previousVersion: semverString.nullable(),
    failure: z.object({ code: z.enum(FAILURE_CODES), message: z.string().max(2000) }).optional(),
    /** Download progress for `downloading`. */
    progress: z.object({ bytes: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).optional(),
    rolloutId: z.string().max(64).optional(),
    /** The build of `version` this update downloads/installed (absent when none was chosen, e.g. incompatible). */
    variant: variantNameSchema.optional(),
    at: isoTime,
  })
  // A removal leaves nothing on the device: a report saying otherwise would put a ghost version back.
  .refine((r) => r.state !== 'removed' || (r.activeVersion === null && r.previousVersion === null), {
    message: 'a removed report has activeVersion and previousVersion null',
    path: ['activeVersion'],
  });
export type UpdateReport = z.infer<typeof updateReportSchema>;

export const inventorySchema = z.object({
  hardwareClass: z.string().min(1).max(64),
  os: z.string().max(64),
  arch: z.string().max(32),
  accelerators: z.array(z.string().max(64)).max(16).default([]),
  agentVersion: semverString,
  /** Runtime name -> version (semver), e.g. { onnx: "1.30.0", command: "1.0.0" }. */
  runtimes: z.record(z.string().max(64), z.string().max(64)).default({}),
  cpuCount: z.number().int().nonnegative().optional(),
  memoryBytes: z.number().int().nonnegative().optional(),
  diskFreeBytes: z.number().int().nonnegative().optional(),
});
export type Inventory = z.infer<typeof inventorySchema>;

export const inventoryMessageSchema = z.object({ v: protocolVersion, seq: sequence, inventory: inventorySchema, at: isoTime });
export type InventoryMessage = z.infer<typeof inventoryMessageSchema>;

/**
 * Presence. `online` is published by the device after its SUBSCRIBE is acknowledged, and doubles as
 * the sync request: the control plane answers with every desired state the database holds for the
 * device. `offline` is the device's last will (or its goodbye). `session` is a random id the device
 * picks per connection, in both: an offline event applies only to the session it belongs to, so a
 * device that already reconnected elsewhere is not marked offline by its old session's will.
 */
export const presenceMessageSchema = z.object({
  v: protocolVersion,
  online: z.boolean(),
  at: isoTime.optional(),
  session: z
    .string()
    .regex(/^[A-Za-z0-9_-]{8,64}$/, 'session: 8-64 chars of [A-Za-z0-9_-]')
    .optional(),
});
export type PresenceMessage = z.infer<typeof presenceMessageSchema>;

/**
 * Binds a command to the credential it was issued for: the first 16 hex digits of sha256(secret),
 * which the control plane stores and the device can compute. A command meant for an earlier
 * credential of the same device id (decommissioned, then enrolled again) is refused by the device.
 */
const credentialBinding = z.string().regex(/^[0-9a-f]{16}$/, 'credential: 16 lower-case hex digits');

/** Commands to one device: non-retained, QoS1. `credential`, when present, must match the device's own. */
export const commandSchema = z.discriminatedUnion('type', [
  z.object({
    v: protocolVersion,
    type: z.literal('install'),
    model: modelNameSchema,
    version: semverString,
    revision: z.number().int().nonnegative(),
    credential: credentialBinding.optional(),
  }),
  z.object({ v: protocolVersion, type: z.literal('report-inventory'), credential: credentialBinding.optional() }),
  z.object({ v: protocolVersion, type: z.literal('decommission'), credential: credentialBinding.optional() }),
]);

/** The credential binding of a stored credential hash (sha256 hex of the secret). */
export function credentialBindingOf(credentialHash: string): string {
  return credentialHash.slice(0, 16);
}
export type Command = z.infer<typeof commandSchema>;

/** Per-interval, per-model-version performance aggregate. One message per interval per active model. */
export const telemetryMessageSchema = z.object({
  v: protocolVersion,
  seq: sequence,
  model: modelNameSchema,
  version: semverString,
  /** The build of `version` that produced these numbers, so builds can be compared with each other. */
  variant: variantNameSchema.optional(),
  intervalStart: isoTime,
  intervalEnd: isoTime,
  count: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  /** Counts per LATENCY_BUCKETS_MS bucket (+Inf last). */
  latencyBuckets: z.array(z.number().int().nonnegative()).length(LATENCY_BUCKET_COUNT),
  latencySumMs: z.number().nonnegative(),
  /** Prediction distribution: label (or score bucket key) -> count. */
  predictions: z.record(z.string().max(64), z.number().int().nonnegative()).refine((p) => Object.keys(p).length <= 256, 'at most 256 labels'),
  vitals: z
    .object({
      cpuPercent: z
        .number()
        .min(0)
        .max(100 * 1024)
        .optional(),
      memoryRssBytes: z.number().int().nonnegative().optional(),
      memoryFreeBytes: z.number().int().nonnegative().optional(),
      temperatureC: z.number().min(-100).max(300).optional(),
    })
    .default({}),
  /** Messages the agent dropped from its offline queue since the last message (queue cap reached). */
  dropped: z.number().int().nonnegative().default(0),
  /** A candidate evaluated beside this version during the interval (shadow.ts). */
  shadow: shadowReportSchema.optional(),
});
export type TelemetryMessage = z.infer<typeof telemetryMessageSchema>;

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Decodes a raw MQTT payload with a schema. Never throws: the caller decides whether a bad
 * payload is refused, dropped or counted.
 */
export function decodePayload<T>(schema: z.ZodType<T>, payload: Buffer | Uint8Array | string): DecodeResult<T> {
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, error: issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid payload' };
  }
  return { ok: true, value: result.data };
}

export function encodePayload(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message));
}
