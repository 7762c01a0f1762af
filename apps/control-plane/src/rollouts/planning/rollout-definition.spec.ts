import { describe, expect, it } from '@jest/globals';
import type { ArtifactRef } from '@fleetline/protocol';
import type { CreateRolloutDto } from '../dto/create-rollout.dto.js';
import { incompatibilityReason } from './compatibility.js';
import { normaliseDefinition, storedSpec } from './rollout-definition.js';

const now = new Date('2026-06-01T00:00:00Z');
const base = (extra: Partial<CreateRolloutDto> = {}): CreateRolloutDto =>
  ({
    model: 'detector',
    version: '2.1.0',
    target: { tags: { region: 'eu' } },
    waves: [{ percent: 1 }, { percent: 10 }, { percent: 100 }],
    ...extra,
  }) as CreateRolloutDto;

describe('rollout definition normalisation', () => {
  it('fills every default', () => {
    const r = normaliseDefinition(base(), now);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({ action: 'install', priority: 0, startAt: now, endAt: null, hasGates: false });
    expect(r.value.spec).toMatchObject({
      onFailure: 'pause',
      timeoutSeconds: 3600,
      retries: { max: 0, backoffSeconds: 30 },
      dynamic: false,
      coverAll: true,
      maintenanceWindows: [],
    });
    expect(r.value.spec.waves[0]).toEqual({
      percent: 1,
      bakeSeconds: 0,
      successPercent: 100,
      manualApproval: false,
      gates: [],
      minSamples: 500,
      windowSeconds: 300,
      onGateFailure: 'pause',
    });
  });

  it('resolves the gate failure action per wave, defaulting to the rollout-level one', () => {
    const r = normaliseDefinition(
      base({
        onGateFailure: 'rollback',
        waves: [
          { percent: 50, gates: [{ metric: 'psi', max: 0.2 }] },
          { percent: 100, gates: [{ metric: 'error_rate', maxIncrease: 0.01 }], onGateFailure: 'pause' },
        ],
      }),
      now,
    );
    expect(r.ok && r.value.spec.waves.map((w) => w.onGateFailure)).toEqual(['rollback', 'pause']);
    expect(r.ok && r.value.hasGates).toBe(true);
  });

  it('names the failure actions with one vocabulary: abort, the old onFailure spelling, is stored as rollback', () => {
    const spelled = (onFailure: 'pause' | 'rollback' | 'abort') => {
      const r = normaliseDefinition(base({ onFailure }), now);
      return r.ok ? r.value.spec.onFailure : undefined;
    };
    expect(spelled('abort')).toBe('rollback');
    expect(spelled('rollback')).toBe('rollback');
    expect(spelled('pause')).toBe('pause');
  });

  it('collects every cross-field problem', () => {
    const r = normaliseDefinition(
      base({
        waves: [{ percent: 50, failure: { minExecuted: 2 } }, { percent: 40 }],
        target: { deviceIds: ['a'], inventory: { agentVersion: 'soon' }, current: { versions: ['1.0.0'], notInstalled: true } },
        dynamic: true,
        endAt: '2026-05-01T00:00:00Z',
        maintenanceWindows: [{ cron: '0 2 * * *', durationSeconds: 3600, timeZone: 'Nowhere/City' }],
      }),
      now,
    );
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems.join('\n');
    for (const fragment of [
      'greater than the previous',
      'last wave must be',
      'failure needs percent or count',
      'not a semver range',
      'exclude each other',
      'dynamic rollout',
      'endAt',
      'unknown time zone',
    ]) {
      expect(problems).toContain(fragment);
    }
  });

  it('stores only the size of an explicit id list', () => {
    const r = normaliseDefinition(base({ target: { deviceIds: ['a', 'b', 'c'] } }), now);
    expect(r.ok && storedSpec(r.value.spec).target).toEqual({ deviceIdCount: 3 });
  });
});

describe('compatibility of a version with an inventory projection', () => {
  const artifact = (runtime: string, compatibility: ArtifactRef['compatibility']): ArtifactRef => ({
    targetPath: `m/1.0.0/${runtime}`,
    sha256: '0'.repeat(64),
    length: 1,
    runtime,
    compatibility,
  });
  const jetson = { hardwareClass: 'jetson', agentVersion: '0.2.0', runtimes: { onnx: '1.18.0' }, accelerators: ['cuda'] };

  it('fits when any build fits (the same rule as the agent: selectVariant)', () => {
    const artifacts = [
      { ...artifact('onnx', { hardwareClasses: ['rpi4'] }), variant: 'rpi' },
      { ...artifact('onnx', { hardwareClasses: ['jetson'], accelerators: ['cuda'], runtimeRange: '>=1.17' }), variant: 'jetson' },
    ];
    expect(incompatibilityReason(artifacts, jetson)).toBeUndefined();
  });

  it('does not fit when one file of the only build does not (every file of a build is installed)', () => {
    const artifacts = [artifact('onnx', { hardwareClasses: ['rpi4'] }), artifact('onnx', { hardwareClasses: ['jetson'] })];
    expect(incompatibilityReason(artifacts, jetson)).toBe('incompatible-hardware: no build fits: hardware class jetson not in [rpi4]');
  });

  it('gives the reason otherwise', () => {
    expect(incompatibilityReason([artifact('onnx', { hardwareClasses: ['rpi4'] })], jetson)).toMatch(
      /^incompatible-hardware: no build fits: hardware class jetson/,
    );
    expect(incompatibilityReason([artifact('tflite', {})], jetson)).toMatch(/^incompatible-runtime/);
    expect(incompatibilityReason([artifact('onnx', { agentRange: '>=1.0.0' })], jetson)).toMatch(/^incompatible-agent/);
    expect(incompatibilityReason([artifact('onnx', {})], { hardwareClass: 'x', agentVersion: '0.1.0', runtimes: 'garbage' })).toMatch(
      /runtime onnx not available/,
    );
  });
});
