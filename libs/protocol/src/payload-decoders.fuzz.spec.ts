import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { z } from 'zod';
import {
  commandSchema,
  decodePayload,
  desiredClearedSchema,
  desiredMessageSchema,
  desiredModelSchema,
  encodePayload,
  inventoryMessageSchema,
  presenceMessageSchema,
  telemetryMessageSchema,
  updateReportSchema,
} from './messages.js';
import { LATENCY_BUCKET_COUNT } from './telemetry.js';
import { FAILURE_CODES, UPDATE_STATES } from './update-state.js';

/**
 * Property-based fuzzing of every MQTT payload decoder (security issue #11): each schema that
 * decodePayload is used with, on either side (control plane: reported, inventory, presence =
 * hello/will, telemetry; device: desired, cleared, commands). For any input the decoder never
 * throws and answers a typed result; a generated valid message round-trips; a valid message with
 * one field broken is refused with an error naming that field; the input is never mutated.
 */

const RUNS = { numRuns: 300 };

// ---------------------------------------------------------------- valid-message generators
const semver = fc
  .tuple(fc.nat(999), fc.nat(999), fc.nat(999), fc.option(fc.stringMatching(/^[0-9A-Za-z]{1,8}$/), { nil: undefined }))
  .map(([a, b, c, pre]) => `${a}.${b}.${c}${pre ? `-${pre}` : ''}`)
  .filter((s) => s.length >= 5);
const modelName = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const isoTime = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
const seq = fc.maxSafeNat();
const revision = fc.nat();
const sha256 = fc.stringMatching(/^[0-9a-f]{64}$/);
const credential = fc.stringMatching(/^[0-9a-f]{16}$/);
const shortText = fc.string({ maxLength: 32 });
const nonEmptyText = fc.string({ minLength: 1, maxLength: 32 });

const artifact = fc.record({
  targetPath: fc.string({ minLength: 1, maxLength: 64 }),
  sha256,
  length: fc.integer({ min: 1, max: 2 ** 40 }),
  runtime: nonEmptyText,
  compatibility: fc.record(
    {
      hardwareClasses: fc.array(nonEmptyText, { maxLength: 4 }),
      runtimeRange: nonEmptyText,
      agentRange: nonEmptyText,
      accelerators: fc.array(nonEmptyText, { maxLength: 4 }),
    },
    { requiredKeys: [] },
  ),
});

const desiredModel = fc.record({
  v: fc.constant(1 as const),
  model: modelName,
  version: semver,
  revision,
  action: fc.constantFrom('install' as const, 'download-only' as const),
  artifacts: fc.array(artifact, { minLength: 1, maxLength: 3 }),
  assignedAt: isoTime,
});
const desiredCleared = fc.record({ v: fc.constant(1 as const), model: modelName, revision, cleared: fc.constant(true as const), at: isoTime });
const updateReport = fc.record(
  {
    v: fc.constant(1 as const),
    seq,
    model: modelName,
    version: semver,
    revision,
    state: fc.constantFrom(...UPDATE_STATES),
    activeVersion: fc.option(semver, { nil: null }),
    previousVersion: fc.option(semver, { nil: null }),
    failure: fc.record({ code: fc.constantFrom(...FAILURE_CODES), message: shortText }),
    at: isoTime,
  },
  { requiredKeys: ['v', 'seq', 'model', 'version', 'revision', 'state', 'activeVersion', 'previousVersion', 'at'] },
);
/** The answer to an unassignment: nothing of the model runs any more. */
const removedReport = fc.record({
  v: fc.constant(1 as const),
  seq,
  model: modelName,
  version: semver,
  revision,
  state: fc.constant('removed' as const),
  activeVersion: fc.constant(null),
  previousVersion: fc.constant(null),
  at: isoTime,
});
const inventoryMessage = fc.record({
  v: fc.constant(1 as const),
  seq,
  at: isoTime,
  inventory: fc.record({
    hardwareClass: nonEmptyText,
    os: shortText,
    arch: shortText,
    accelerators: fc.array(shortText, { maxLength: 4 }),
    agentVersion: semver,
    runtimes: fc.dictionary(fc.stringMatching(/^[a-z]{1,10}$/), shortText, { maxKeys: 4 }),
  }),
});
const presence = fc.record(
  { v: fc.constant(1 as const), online: fc.boolean(), at: isoTime, session: fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/) },
  { requiredKeys: ['v', 'online'] },
);
const command = fc.oneof(
  fc.record({ v: fc.constant(1 as const), type: fc.constant('install' as const), model: modelName, version: semver, revision, credential }),
  fc.record({ v: fc.constant(1 as const), type: fc.constant('report-inventory' as const), credential }, { requiredKeys: ['v', 'type'] }),
  fc.record({ v: fc.constant(1 as const), type: fc.constant('decommission' as const), credential }, { requiredKeys: ['v', 'type'] }),
);
const telemetry = fc.record({
  v: fc.constant(1 as const),
  seq,
  model: modelName,
  version: semver,
  intervalStart: isoTime,
  intervalEnd: isoTime,
  count: fc.nat(),
  errors: fc.nat(),
  latencyBuckets: fc.array(fc.nat(), { minLength: LATENCY_BUCKET_COUNT, maxLength: LATENCY_BUCKET_COUNT }),
  latencySumMs: fc.double({ min: 0, max: 1e12, noNaN: true }).map((x) => x + 0),
  predictions: fc.dictionary(fc.stringMatching(/^[a-z:0-9]{1,16}$/), fc.nat(), { maxKeys: 8 }),
  vitals: fc.record({ cpuPercent: fc.integer({ min: 0, max: 100 }), temperatureC: fc.integer({ min: -40, max: 120 }) }, { requiredKeys: [] }),
  dropped: fc.nat(),
});

interface Decoder {
  name: string;
  schema: z.ZodType<unknown>;
  valid: fc.Arbitrary<Record<string, unknown>>;
  /** Required fields; breaking one must be refused with an error that names it. */
  required: string[];
}

const DECODERS: Decoder[] = [
  { name: 'desired', schema: desiredModelSchema, valid: desiredModel, required: ['v', 'model', 'version', 'revision', 'artifacts', 'assignedAt'] },
  { name: 'cleared', schema: desiredClearedSchema, valid: desiredCleared, required: ['v', 'model', 'revision', 'cleared', 'at'] },
  { name: 'desired/{model} (either)', schema: desiredMessageSchema, valid: fc.oneof(desiredModel, desiredCleared), required: ['v', 'model', 'revision'] },
  {
    name: 'reported',
    schema: updateReportSchema,
    valid: fc.oneof(updateReport, removedReport),
    required: ['v', 'seq', 'model', 'version', 'revision', 'state', 'at'],
  },
  { name: 'inventory', schema: inventoryMessageSchema, valid: inventoryMessage, required: ['v', 'seq', 'inventory', 'at'] },
  { name: 'presence (hello, will)', schema: presenceMessageSchema, valid: presence, required: ['v', 'online'] },
  { name: 'commands', schema: commandSchema, valid: command, required: ['v', 'type'] },
  {
    name: 'telemetry',
    schema: telemetryMessageSchema,
    valid: telemetry,
    required: ['v', 'seq', 'model', 'version', 'intervalStart', 'intervalEnd', 'count', 'errors', 'latencyBuckets', 'latencySumMs', 'predictions'],
  },
];

/** Anything a hostile peer could put in a payload. */
const hostilePayload = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
  fc.string({ maxLength: 512 }),
  fc.string({ unit: 'binary', maxLength: 256 }),
  fc.jsonValue({ maxDepth: 4 }).map((j) => JSON.stringify(j)),
  fc.constantFrom('', 'null', '[]', '{}', '{"v":1}', '{"__proto__":{"v":1}}', '{"constructor":{"prototype":{}}}', '1e999', '"\\u0000"', '{"v":1,"v":2}'),
);

/** Values of the wrong kind for any field. */
const wrongValue = fc.oneof(
  fc.constant(null),
  fc.constant('not-a-number-or-enum ☃'),
  fc.constant(-1),
  fc.constant(1.5),
  fc.constant(Number.MAX_SAFE_INTEGER * 4),
  fc.constant([]),
  fc.constant({}),
  fc.constant(true),
);

function isResult(r: unknown): boolean {
  const x = r as { ok?: unknown; value?: unknown; error?: unknown };
  return (x.ok === true && 'value' in x) || (x.ok === false && typeof x.error === 'string' && x.error.length > 0);
}

describe.each(DECODERS)('decodePayload($name)', ({ schema, valid, required }) => {
  it('never throws and always answers a typed result, whatever the bytes', () => {
    fc.assert(
      fc.property(hostilePayload, (payload) => {
        const copy = Buffer.isBuffer(payload) ? Buffer.from(payload) : payload;
        const r = decodePayload(schema, payload);
        expect(isResult(r)).toBe(true);
        // No side effect on the input.
        if (Buffer.isBuffer(payload)) expect(payload.equals(copy as Buffer)).toBe(true);
      }),
      RUNS,
    );
  });

  it('round-trips generated valid messages', () => {
    fc.assert(
      fc.property(valid, (message) => {
        const r = decodePayload(schema, encodePayload(message));
        if (!r.ok) throw new Error(`refused a valid message: ${r.error}: ${JSON.stringify(message)}`);
        // Decoding the decoded value again gives the same value (defaults are filled once).
        expect(decodePayload(schema, encodePayload(r.value))).toEqual(r);
        expect(r.value).toMatchObject(message);
      }),
      RUNS,
    );
  });

  it('refuses a valid message with one required field broken or removed, naming the field', () => {
    fc.assert(
      fc.property(valid, fc.constantFrom(...required), fc.option(wrongValue, { nil: undefined }), (message, field, value) => {
        const broken: Record<string, unknown> = { ...message };
        if (value === undefined) delete broken[field];
        else broken[field] = value;
        fc.pre(JSON.stringify(broken[field]) !== JSON.stringify(message[field]));
        // A value of the field's own kind may be valid (true for a boolean, {} for a map); -1 never is
        // (every number here is non-negative), nor is the string (every required string has a pattern or an enum).
        const kind = (x: unknown): string => (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x);
        fc.pre(value === undefined || value === -1 || typeof value === 'string' || kind(value) !== kind(message[field]));
        const bytes = encodePayload(broken);
        const before = Buffer.from(bytes);
        const r = decodePayload(schema, bytes);
        expect(r.ok).toBe(false);
        // Unions report at the root or at the field; every other schema names the field.
        if (!r.ok && schema !== desiredMessageSchema) expect(r.error.split(':')[0]!.split('.')[0]).toMatch(new RegExp(`^(${field}|\\(root\\))$`));
        expect(bytes.equals(before)).toBe(true);
      }),
      RUNS,
    );
  });

  it('refuses any JSON value that is not an object with the right version', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (value) => {
        fc.pre(!(typeof value === 'object' && value !== null && !Array.isArray(value) && (value as Record<string, unknown>)['v'] === 1));
        expect(decodePayload(schema, JSON.stringify(value)).ok).toBe(false);
      }),
      RUNS,
    );
  });
});
