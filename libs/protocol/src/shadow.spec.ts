import { describe, expect, it } from '@jest/globals';
import { decodePayload, desiredModelSchema, encodePayload, telemetryMessageSchema } from './messages.js';
import { SHADOW_DIFF_BUCKET_COUNT, SHADOW_DIFF_BUCKETS, shadowDiffBucketIndex } from './shadow.js';
import { LATENCY_BUCKET_COUNT } from './telemetry.js';

const desired = {
  v: 1,
  model: 'detector',
  version: '2.0.0',
  revision: 4,
  artifacts: [{ targetPath: 'detector/2.0.0/model.onnx', sha256: 'a'.repeat(64), length: 10, runtime: 'onnx' }],
  assignedAt: '2026-11-27T10:00:00.000Z',
};

const telemetry = {
  v: 1,
  seq: 1,
  model: 'detector',
  version: '1.0.0',
  intervalStart: '2026-11-27T10:00:00.000Z',
  intervalEnd: '2026-11-27T10:01:00.000Z',
  count: 100,
  errors: 0,
  latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
  latencySumMs: 500,
  predictions: { cat: 60, dog: 40 },
};

const shadow = {
  version: '2.0.0',
  mirrored: 50,
  dropped: 2,
  count: 48,
  errors: 1,
  latencyBuckets: new Array<number>(LATENCY_BUCKET_COUNT).fill(0),
  latencySumMs: 300,
  predictions: { cat: 30, dog: 17 },
  compared: 47,
  agreed: 40,
};

describe('shadow directive', () => {
  it('is taken with action shadow and given defaults', () => {
    const d = decodePayload(desiredModelSchema, encodePayload({ ...desired, action: 'shadow', shadow: { samplePercent: 25, durationSeconds: 600 } }));
    expect(d.ok && d.value.action).toBe('shadow');
    expect(d.ok && d.value.shadow).toEqual({ samplePercent: 25, durationSeconds: 600 });
  });

  it('is refused without its action, and the action without it', () => {
    const missing = decodePayload(desiredModelSchema, encodePayload({ ...desired, action: 'shadow' }));
    expect(missing).toEqual({ ok: false, error: 'shadow: a shadow directive comes with action shadow, and only with it' });
    expect(decodePayload(desiredModelSchema, encodePayload({ ...desired, shadow: { samplePercent: 5, durationSeconds: 60 } })).ok).toBe(false);
  });

  it('refuses samples outside (0, 100] percent, and unbounded durations', () => {
    const with_ = (s: object): boolean => decodePayload(desiredModelSchema, encodePayload({ ...desired, action: 'shadow', shadow: s })).ok;
    expect(with_({ samplePercent: 0, durationSeconds: 60 })).toBe(false);
    expect(with_({ samplePercent: 100.5, durationSeconds: 60 })).toBe(false);
    expect(with_({ samplePercent: 100, durationSeconds: 60, maxSamples: 1000 })).toBe(true);
    expect(with_({ samplePercent: 10, durationSeconds: 8 * 24 * 3600 })).toBe(false);
    expect(with_({ samplePercent: 10 })).toBe(false);
  });
});

describe('shadow telemetry', () => {
  it('rides on the active version telemetry and is optional', () => {
    expect(decodePayload(telemetryMessageSchema, encodePayload(telemetry)).ok).toBe(true);
    const d = decodePayload(telemetryMessageSchema, encodePayload({ ...telemetry, shadow }));
    expect(d.ok && d.value.shadow).toEqual({ ...shadow, ended: false });
  });

  it('refuses counts that contradict each other', () => {
    const bad = (s: object): string | undefined => {
      const d = decodePayload(telemetryMessageSchema, encodePayload({ ...telemetry, shadow: { ...shadow, ...s } }));
      return d.ok ? undefined : d.error;
    };
    expect(bad({ agreed: 48 })).toBe('shadow.agreed: agreed cannot exceed compared');
    expect(bad({ compared: 49 })).toBe('shadow.compared: compared cannot exceed count');
    expect(bad({ errors: 49 })).toBe('shadow.errors: errors cannot exceed count');
    expect(bad({ latencyBuckets: [1] })).toMatch(/^shadow\.latencyBuckets/);
    expect(bad({ diffBuckets: [1, 2] })).toMatch(/^shadow\.diffBuckets/);
    expect(bad({ diffBuckets: new Array<number>(SHADOW_DIFF_BUCKET_COUNT).fill(1) })).toBeUndefined();
  });

  it('buckets absolute differences with +Inf last', () => {
    expect(shadowDiffBucketIndex(0)).toBe(0);
    expect(shadowDiffBucketIndex(0.001)).toBe(0);
    expect(shadowDiffBucketIndex(0.0011)).toBe(1);
    expect(shadowDiffBucketIndex(3)).toBe(SHADOW_DIFF_BUCKETS.indexOf(5));
    expect(shadowDiffBucketIndex(1e9)).toBe(SHADOW_DIFF_BUCKET_COUNT - 1);
  });
});
