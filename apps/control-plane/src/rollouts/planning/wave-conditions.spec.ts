import { describe, expect, it } from '@jest/globals';
import { assessWave, decideWave } from './wave-conditions.js';

describe('wave success and failure conditions', () => {
  it('succeeds when successPercent of the members committed; skipped devices do not count', () => {
    const a = assessWave({ committed: 19, failed: 1, skipped: 5 }, 95, undefined, 'install');
    expect(a.members).toBe(20);
    expect(a.successPercent).toBe(95);
    expect(a.successMet).toBe(true);
    expect(assessWave({ committed: 18, installing: 2 }, 95, undefined, 'install').successMet).toBe(false);
  });

  it('counts downloaded as success for download-only rollouts only', () => {
    expect(assessWave({ downloaded: 10 }, 100, undefined, 'download-only').successMet).toBe(true);
    const install = assessWave({ downloaded: 10 }, 100, undefined, 'install');
    expect(install.successMet).toBe(false);
    expect(install.inFlight).toBe(10);
  });

  it('an empty wave succeeds trivially', () => {
    expect(assessWave({}, 100, undefined, 'install').successMet).toBe(true);
  });

  it('judges failure only once minExecuted devices finished', () => {
    const failure = { percent: 5, minExecuted: 10 };
    expect(assessWave({ failed: 2, committed: 3, pending: 100 }, 95, failure, 'install').failureMet).toBe(false);
    const met = assessWave({ failed: 1, committed: 9, pending: 100 }, 95, failure, 'install');
    expect(met.failureMet).toBe(true);
    expect(met.failurePercent).toBe(10);
    expect(assessWave({ failed: 0, committed: 50 }, 95, failure, 'install').failureMet).toBe(false);
  });

  it('counts timed-out devices as failures and supports absolute counts', () => {
    const a = assessWave({ 'timed-out': 2, failed: 1, committed: 100 }, 95, { count: 3, minExecuted: 1 }, 'install');
    expect(a.failed).toBe(3);
    expect(a.failureMet).toBe(true);
  });

  it('ignores failures an operator accepted on resume; only new ones count', () => {
    const failure = { count: 2, minExecuted: 1 };
    expect(assessWave({ failed: 3, committed: 10 }, 95, failure, 'install', 3).failureMet).toBe(false);
    expect(assessWave({ failed: 5, committed: 10 }, 95, failure, 'install', 3).failureMet).toBe(true);
  });

  it('decides: fail beats everything, then wait, bake, advance', () => {
    const now = new Date('2026-01-01T00:10:00Z');
    const ok = assessWave({ committed: 10 }, 100, undefined, 'install');
    expect(decideWave(ok, 600, new Date('2026-01-01T00:05:00Z'), now).kind).toBe('bake');
    expect(decideWave(ok, 300, new Date('2026-01-01T00:05:00Z'), now).kind).toBe('advance');
    expect(decideWave(ok, 0, null, now).kind).toBe('advance');
    expect(decideWave(assessWave({ committed: 5, pending: 5 }, 100, undefined, 'install'), 0, null, now).kind).toBe('wait');
    expect(decideWave(assessWave({ failed: 5, committed: 5 }, 50, { percent: 10, minExecuted: 1 }, 'install'), 0, null, now).kind).toBe('fail');
  });
});
