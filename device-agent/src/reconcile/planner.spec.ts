import { describe, it, expect } from '@jest/globals';
import type { DesiredModel, UpdateState } from '@fleetline/protocol';
import { planSteps, resumeSteps, type CurrentModelState } from './planner.js';

function desired(version: string, revision: number, action: DesiredModel['action'] = 'install'): DesiredModel {
  return {
    v: 1,
    model: 'm',
    version,
    revision,
    action,
    ...(action === 'shadow' ? { shadow: { samplePercent: 10, durationSeconds: 60 } } : {}),
    artifacts: [{ targetPath: `m/${version}/f`, sha256: 'a'.repeat(64), length: 1, runtime: 'onnx', compatibility: {} }],
    assignedAt: '2026-01-01T00:00:00Z',
  };
}
const kinds = (d: DesiredModel | null, c: CurrentModelState): string[] => planSteps(d, c).map((s) => (s.kind === 'verify' ? `verify:${s.then}` : s.kind));
const fresh: CurrentModelState = { activeVersion: null, previousVersion: null };
const FULL = ['check-compatibility', 'download', 'verify:install', 'install', 'activate', 'health-check', 'commit'];

describe('planSteps', () => {
  it('plans a full install for a new assignment', () => {
    expect(kinds(desired('1.0.0', 1), fresh)).toEqual(FULL);
  });

  it('stops a download-only assignment after staging', () => {
    expect(kinds(desired('1.0.0', 1, 'download-only'), fresh)).toEqual(['check-compatibility', 'download', 'verify:stage']);
  });

  it('stages a shadow candidate like a download-only one, and installs it only on an install command', () => {
    expect(kinds(desired('1.0.0', 1, 'shadow'), fresh)).toEqual(['check-compatibility', 'download', 'verify:stage']);
    expect(resumeSteps('downloaded', 'shadow').map((s) => s.kind)).toEqual([]);
    expect(resumeSteps('downloaded', 'shadow', true).map((s) => s.kind)).toEqual(['verify', 'install', 'activate', 'health-check', 'commit']);
  });

  it('acknowledges an assignment of the version already active, moving no bytes', () => {
    expect(
      kinds(desired('1.0.0', 2), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.0.0', revision: 1, state: 'committed' } }),
    ).toEqual(['acknowledge']);
  });

  it('acknowledges again after a crash right after the acknowledgement was journaled (idle, version active)', () => {
    expect(kinds(desired('1.0.0', 2), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.0.0', revision: 2, state: 'idle' } })).toEqual([
      'acknowledge',
    ]);
  });

  it('plans nothing for a terminal update of the same revision (no device-side retries)', () => {
    for (const state of ['committed', 'failed', 'rolled-back', 'incompatible'] as UpdateState[]) {
      expect(kinds(desired('1.1.0', 3), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.1.0', revision: 3, state } })).toEqual([]);
    }
  });

  it('retries a failed version when the server issues a new revision', () => {
    expect(kinds(desired('1.1.0', 4), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.1.0', revision: 3, state: 'failed' } })).toEqual(
      FULL,
    );
  });

  it.each([
    ['idle', FULL],
    ['downloading', ['download', 'verify:install', 'install', 'activate', 'health-check', 'commit']],
    ['verifying', ['verify:install', 'install', 'activate', 'health-check', 'commit']],
    ['installing', ['install', 'activate', 'health-check', 'commit']],
    ['activating', ['activate', 'health-check', 'commit']],
    ['health-checking', ['health-check', 'commit']],
    ['rolling-back', ['roll-back']],
  ] as Array<[UpdateState, string[]]>)('resumes the same assignment journaled in %s', (state, expected) => {
    expect(kinds(desired('1.1.0', 2), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.1.0', revision: 2, state } })).toEqual(expected);
  });

  it('abandons an unfinished pre-activation update superseded by a new assignment', () => {
    // idle: also what a crash between abandoning and removing the entry leaves; installing: `current` has not moved yet.
    for (const state of ['idle', 'downloading', 'verifying', 'downloaded', 'installing'] as UpdateState[]) {
      expect(kinds(desired('1.2.0', 3), { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.1.0', revision: 2, state } })).toEqual([
        'abandon',
        ...FULL,
      ]);
    }
  });

  it('finishes an update past the point of no return before looking at a new assignment', () => {
    expect(
      kinds(desired('1.2.0', 3), { activeVersion: '1.1.0', previousVersion: '1.0.0', update: { version: '1.1.0', revision: 2, state: 'health-checking' } }),
    ).toEqual(['health-check', 'commit']);
    expect(kinds(null, { activeVersion: '1.1.0', previousVersion: '1.0.0', update: { version: '1.1.0', revision: 2, state: 'rolling-back' } })).toEqual([
      'roll-back',
    ]);
  });

  it('waits in downloaded until an install is requested, then re-verifies before installing', () => {
    const c = (installRequested: boolean): CurrentModelState => ({
      activeVersion: null,
      previousVersion: null,
      update: { version: '1.0.0', revision: 1, state: 'downloaded', installRequested },
    });
    expect(kinds(desired('1.0.0', 1, 'download-only'), c(false))).toEqual([]);
    expect(kinds(desired('1.0.0', 1, 'download-only'), c(true))).toEqual(['verify:install', 'install', 'activate', 'health-check', 'commit']);
  });

  it('removes an unassigned model, abandoning a staged update first', () => {
    expect(kinds(null, { activeVersion: '1.0.0', previousVersion: null })).toEqual(['remove-model']);
    expect(kinds(null, { activeVersion: '1.0.0', previousVersion: null, update: { version: '1.1.0', revision: 2, state: 'downloaded' } })).toEqual([
      'abandon',
      'remove-model',
    ]);
    expect(kinds(null, fresh)).toEqual([]);
  });

  it('never installs or activates without a verify before it (invariant 1)', () => {
    const states: UpdateState[] = ['idle', 'downloading', 'verifying', 'downloaded'];
    for (const state of states) {
      const steps = resumeSteps(state, 'install', true).map((s) => s.kind);
      const install = steps.indexOf('install');
      if (install >= 0) expect(steps.indexOf('verify')).toBeLessThan(install);
    }
  });
});
