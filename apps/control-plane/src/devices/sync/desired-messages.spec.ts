import { describe, expect, it } from '@jest/globals';
import { type ArtifactRef, decodePayload, desiredClearedSchema, desiredModelSchema } from '@fleetline/protocol';
import { desiredMessage, type DesiredStateRow } from './desired-messages.js';

const ref = (file: string, variant?: string): ArtifactRef => ({
  targetPath: `seg/1.0.0/${file}`,
  sha256: 'b'.repeat(64),
  length: 3,
  runtime: 'onnx',
  compatibility: {},
  ...(variant ? { variant } : {}),
});
const row: DesiredStateRow = {
  deviceId: 'd1',
  model: 'seg',
  version: '1.0.0',
  revision: 4,
  rolloutId: null,
  action: 'install',
  timeoutSeconds: null,
  variant: null,
  assignedAt: '2026-12-01T00:00:00.000Z',
};
const artifacts = [ref('npu.bin', 'npu-int8'), ref('npu-labels.txt', 'npu-int8'), ref('cpu.bin', 'cpu-fp32')];
const decode = (variant: string | null) => {
  const d = decodePayload(desiredModelSchema, desiredMessage({ ...row, variant }, artifacts).payload);
  if (!d.ok) throw new Error(d.error);
  return d.value;
};

describe('desiredMessage with builds', () => {
  it('sends only the chosen build, named, so any agent installs exactly its files', () => {
    expect(decode('npu-int8')).toMatchObject({ variant: 'npu-int8', artifacts: [artifacts[0], artifacts[1]] });
    expect(decode('cpu-fp32')).toMatchObject({ variant: 'cpu-fp32', artifacts: [artifacts[2]] });
  });

  it('sends every build, unnamed, when none was chosen (or the chosen one is not in the version)', () => {
    for (const v of [null, 'gone']) {
      const d = decode(v);
      expect(d.variant).toBeUndefined();
      expect(d.artifacts).toEqual(artifacts);
    }
  });
});

describe('desiredMessage of a shadow assignment', () => {
  it('carries the directive, so a hello re-sends the same shadow', () => {
    const shadow = { samplePercent: 10, durationSeconds: 900, maxSamples: 5000 };
    const d = decodePayload(desiredModelSchema, desiredMessage({ ...row, action: 'shadow', shadow, rolloutId: 'r-1' }, artifacts).payload);
    expect(d.ok && d.value).toMatchObject({ action: 'shadow', shadow, rolloutId: 'r-1' });
    const install = decodePayload(desiredModelSchema, desiredMessage({ ...row, shadow }, artifacts).payload);
    expect(install.ok && install.value.shadow).toBeUndefined();
  });
});

describe('desiredMessage in a hello answer', () => {
  const stored = { version: '1.0.0', revision: 4, state: 'committed' as const, activeVersion: '1.0.0', previousVersion: null };

  it('carries the stored report when the row has one, and nothing otherwise', () => {
    const d = decodePayload(desiredModelSchema, desiredMessage({ ...row, stored }, artifacts).payload);
    expect(d.ok && d.value.stored).toEqual(stored);
    expect(decode(null).stored).toBeUndefined();
  });

  it('carries it on a clear too', () => {
    const removed = { ...stored, revision: 5, state: 'removed' as const, activeVersion: null };
    const d = decodePayload(desiredClearedSchema, desiredMessage({ ...row, version: null, revision: 5, stored: removed }, []).payload);
    expect(d.ok && d.value.stored).toEqual(removed);
  });
});
