import { describe, expect, it } from '@jest/globals';
import { candidateCohorts, cohortFor, FLEET_COHORT, INACTIVE_COHORT, parseCohort, rolloutCohort, rolloutCohortPrefix } from './telemetry-cohort.js';

const id = '6d1f5f0e-8a43-4a7a-9c55-2a3a2f0b8c11';

describe('cohort labels', () => {
  it('formats and parses rollout and fleet cohorts', () => {
    expect(rolloutCohort(id, 2)).toBe(`rollout:${id}:w2`);
    expect(parseCohort(rolloutCohort(id, 2))).toEqual({ kind: 'rollout', rolloutId: id, wave: 2 });
    expect(parseCohort(FLEET_COHORT)).toEqual({ kind: 'fleet' });
    expect(parseCohort('rollout:x')).toBeUndefined();
    expect(rolloutCohort(id, 0).startsWith(rolloutCohortPrefix(id))).toBe(true);
  });

  it('builds the candidate cohort from distinct waves', () => {
    expect(candidateCohorts(id, [1, 0, 1])).toEqual([rolloutCohort(id, 0), rolloutCohort(id, 1)]);
  });

  it('labels with the active rollout of the same model, else fleet', () => {
    const t = (s: number) => new Date(s * 1000);
    expect(cohortFor('m', [])).toBe(FLEET_COHORT);
    expect(cohortFor('m', [{ rolloutId: 'a', model: 'other', wave: 0, active: true, createdAt: t(1) }])).toBe(FLEET_COHORT);
    expect(cohortFor('m', [{ rolloutId: 'a', model: 'm', wave: 0, active: false, createdAt: t(1) }])).toBe(FLEET_COHORT);
    expect(
      cohortFor('m', [
        { rolloutId: 'a', model: 'm', wave: 0, active: true, createdAt: t(1) },
        { rolloutId: 'b', model: 'm', wave: 3, active: true, createdAt: t(2) },
      ]),
    ).toBe(rolloutCohort('b', 3));
  });

  it('keeps a device outside the waves out of the fleet (baseline) cohort unless it runs the version it reports', () => {
    expect(cohortFor('m', [], { version: '1.0.0', activeVersion: '1.0.0' })).toBe(FLEET_COHORT);
    expect(cohortFor('m', [], { version: '1.0.0', activeVersion: '2.0.0' })).toBe(INACTIVE_COHORT);
    expect(cohortFor('m', [], { version: '1.0.0', activeVersion: null })).toBe(INACTIVE_COHORT);
    expect(cohortFor('m', [], { version: '1.0.0', activeVersion: undefined })).toBe(INACTIVE_COHORT);
    expect(parseCohort(INACTIVE_COHORT)).toEqual({ kind: 'inactive' });
  });
});
