import { describe, expect, it } from '@jest/globals';
import type { CreateRolloutDto } from '../dto/create-rollout.dto.js';
import { assessWave } from './wave-conditions.js';
import { normaliseDefinition } from './rollout-definition.js';
import { desiredActionOfWave, waveSuccessAction } from './shadow-wave.js';

const now = new Date('2026-06-01T00:00:00Z');
const shadowWave = { action: 'shadow', percent: 5, shadow: { samplePercent: 20, durationSeconds: 600 }, gates: [{ metric: 'shadow_agreement', min: 0.9 }] };
const dto = (waves: unknown[], extra: Partial<CreateRolloutDto> = {}): CreateRolloutDto =>
  ({ model: 'detector', version: '2.1.0', target: { tags: { region: 'eu' } }, waves, ...extra }) as CreateRolloutDto;

describe('shadow waves in a rollout definition', () => {
  it('keeps the directive and the shadow gates of a shadow -> install -> install rollout', () => {
    const r = normaliseDefinition(dto([shadowWave, { percent: 10 }, { percent: 100 }]), now);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.spec.waves[0]).toMatchObject({
      action: 'shadow',
      shadow: { samplePercent: 20, durationSeconds: 600 },
      gates: [{ metric: 'shadow_agreement', min: 0.9 }],
    });
    expect(r.value.spec.waves[1]!.action).toBeUndefined();
    expect(r.value.hasGates).toBe(true);
  });

  it('refuses what cannot work, naming it', () => {
    const problems = (waves: unknown[], extra: Partial<CreateRolloutDto> = {}): string[] => {
      const r = normaliseDefinition(dto(waves, extra), now);
      return r.ok ? [] : r.problems;
    };
    expect(problems([{ ...shadowWave, shadow: undefined }, { percent: 100 }])).toContain(
      'waves[0] is a shadow wave and needs shadow { samplePercent, durationSeconds }',
    );
    expect(problems([{ percent: 5, shadow: { samplePercent: 1, durationSeconds: 60 } }, { percent: 100 }])).toContain(
      'waves[0].shadow is only for a wave with action shadow',
    );
    expect(problems([{ percent: 5 }, { ...shadowWave, percent: 100 }])).toContain('waves[1]: shadow waves come before every install wave');
    expect(problems([shadowWave, { percent: 100 }], { action: 'download-only' })).toContain('waves[0]: shadow waves need a rollout with action install');
    expect(problems([{ ...shadowWave, gates: [{ metric: 'latency_p95', maxRatio: 1.2 }] }, { percent: 100 }])).toContain(
      'waves[0].gates[0]: latency_p95 is not a shadow metric (a shadow wave has only shadow_* gates)',
    );
    expect(problems([{ percent: 5, gates: [{ metric: 'shadow_agreement', min: 0.9 }] }, { percent: 100 }])).toContain(
      'waves[0].gates[0]: shadow_agreement needs a shadow wave',
    );
    expect(problems([{ ...shadowWave, gates: [{ metric: 'shadow_agreement', max: 0.9 }] }, { percent: 100 }])).toContain('waves[0].gates[0] needs min');
  });
});

describe('what a shadow wave tells its devices, and when they are done', () => {
  const spec = { shadow: { samplePercent: 20, durationSeconds: 600 }, action: 'shadow' as const };

  it('sends action shadow with the directive, and install for the other waves', () => {
    expect(desiredActionOfWave('install', spec)).toEqual({ action: 'shadow', shadow: spec.shadow });
    expect(desiredActionOfWave('install', {})).toEqual({ action: 'install' });
    expect(desiredActionOfWave('download-only', {})).toEqual({ action: 'download-only' });
    expect(desiredActionOfWave('install', undefined)).toEqual({ action: 'install' });
  });

  it('counts a staged device of a shadow wave as done', () => {
    expect(assessWave({ downloaded: 10 }, 100, undefined, waveSuccessAction('install', spec)).successMet).toBe(true);
    expect(assessWave({ downloaded: 10 }, 100, undefined, waveSuccessAction('install', {})).successMet).toBe(false);
  });
});
