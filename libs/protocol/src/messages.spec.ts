import { describe, expect, it } from '@jest/globals';
import {
  decodePayload,
  desiredClearedSchema,
  desiredModelSchema,
  encodePayload,
  type StoredReport,
  storedReportMatches,
  telemetryMessageSchema,
  updateReportSchema,
} from './messages.js';
import { LATENCY_BUCKET_COUNT } from './telemetry.js';

const report = {
  v: 1,
  seq: 7,
  model: 'detector',
  version: '1.2.0',
  revision: 3,
  state: 'committed',
  activeVersion: '1.2.0',
  previousVersion: '1.1.0',
  at: '2026-11-27T10:00:00.000Z',
};

describe('decodePayload', () => {
  it('accepts a valid report and round-trips through encodePayload', () => {
    const result = decodePayload(updateReportSchema, encodePayload(report));
    expect(result).toEqual({ ok: true, value: report });
  });

  it('explains what is wrong instead of throwing', () => {
    expect(decodePayload(updateReportSchema, Buffer.from('{not json'))).toEqual({ ok: false, error: 'payload is not valid JSON' });
    const bad = decodePayload(updateReportSchema, encodePayload({ ...report, state: 'exploded' }));
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^state:/);
    expect(decodePayload(updateReportSchema, encodePayload({ ...report, v: 2 })).ok).toBe(false);
    expect(decodePayload(updateReportSchema, encodePayload({ ...report, version: '1.2' })).ok).toBe(false);
    expect(decodePayload(updateReportSchema, encodePayload({ ...report, seq: -1 })).ok).toBe(false);
  });

  it('takes a removal report only when it says that nothing of the model runs any more', () => {
    const removed = { ...report, state: 'removed', version: '1.2.0', activeVersion: null, previousVersion: null };
    expect(decodePayload(updateReportSchema, encodePayload(removed))).toEqual({ ok: true, value: removed });
    const ghost = decodePayload(updateReportSchema, encodePayload({ ...removed, activeVersion: '1.2.0' }));
    expect(ghost).toEqual({ ok: false, error: 'activeVersion: a removed report has activeVersion and previousVersion null' });
    expect(decodePayload(updateReportSchema, encodePayload({ ...removed, previousVersion: '1.1.0' })).ok).toBe(false);
  });

  it('ignores unknown fields so newer peers can add optional ones', () => {
    const result = decodePayload(updateReportSchema, encodePayload({ ...report, futureField: true }));
    expect(result.ok).toBe(true);
  });

  it('requires telemetry histograms of the shared bucket layout', () => {
    const telemetry = {
      v: 1,
      seq: 1,
      model: 'detector',
      version: '1.2.0',
      intervalStart: '2026-11-27T10:00:00.000Z',
      intervalEnd: '2026-11-27T10:01:00.000Z',
      count: 10,
      errors: 1,
      latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
      latencySumMs: 120,
      predictions: { cat: 10 },
    };
    expect(decodePayload(telemetryMessageSchema, encodePayload(telemetry)).ok).toBe(true);
    expect(decodePayload(telemetryMessageSchema, encodePayload({ ...telemetry, latencyBuckets: [1, 2, 3] })).ok).toBe(false);
  });

  it('defaults the desired action to install', () => {
    const desired = decodePayload(
      desiredModelSchema,
      encodePayload({
        v: 1,
        model: 'detector',
        version: '2.0.0',
        revision: 1,
        artifacts: [{ targetPath: 'detector/2.0.0/model.onnx', sha256: 'a'.repeat(64), length: 10, runtime: 'onnx' }],
        assignedAt: '2026-11-27T10:00:00.000Z',
      }),
    );
    expect(desired.ok && desired.value.action).toBe('install');
  });
});

describe('stored report in a hello answer', () => {
  const stored: StoredReport = { version: '2.0.0', revision: 4, state: 'committed', activeVersion: '2.0.0', previousVersion: '1.0.0' };
  const desired = {
    v: 1,
    model: 'detector',
    version: '2.0.0',
    revision: 4,
    artifacts: [{ targetPath: 'detector/2.0.0/model.onnx', sha256: 'a'.repeat(64), length: 10, runtime: 'onnx' }],
    assignedAt: '2026-11-27T10:00:00.000Z',
  };

  it('travels on desired and cleared messages, and is optional on both', () => {
    const withStored = decodePayload(desiredModelSchema, encodePayload({ ...desired, stored }));
    expect(withStored.ok && withStored.value.stored).toEqual(stored);
    const without = decodePayload(desiredModelSchema, encodePayload(desired));
    expect(without.ok && without.value.stored).toBeUndefined();
    const cleared = { v: 1, model: 'detector', revision: 5, cleared: true, at: '2026-11-27T10:00:00.000Z' };
    const removed = { ...stored, revision: 5, state: 'removed', activeVersion: null, previousVersion: null };
    const c = decodePayload(desiredClearedSchema, encodePayload({ ...cleared, stored: removed }));
    expect(c.ok && c.value.stored).toEqual(removed);
  });

  it('refuses a stored report with an unknown state', () => {
    expect(decodePayload(desiredModelSchema, encodePayload({ ...desired, stored: { ...stored, state: 'exploded' } })).ok).toBe(false);
  });

  it('matches only when every re-stated field is equal', () => {
    expect(storedReportMatches(stored, { ...stored })).toBe(true);
    expect(storedReportMatches(undefined, stored)).toBe(false);
    for (const change of [
      { version: '2.0.1' },
      { revision: 5 },
      { state: 'activating' as const },
      { activeVersion: '1.0.0' },
      { activeVersion: null },
      { previousVersion: null },
    ]) {
      expect(storedReportMatches(stored, { ...stored, ...change })).toBe(false);
    }
  });
});
