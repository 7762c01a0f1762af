import { describe, expect, it } from '@jest/globals';
import { REPORT_STATES } from '@fleetline/protocol';
import { deviceStateForReport, isTransientFailure, reportStateMapping, retryDelaySeconds, successStates } from './device-state.js';

describe('protocol update state -> rollout device state', () => {
  it('maps every protocol state', () => {
    const expected: Record<string, string> = {
      idle: 'notified',
      downloading: 'downloading',
      verifying: 'downloading',
      downloaded: 'downloaded',
      installing: 'installing',
      activating: 'installing',
      'health-checking': 'installing',
      'rolling-back': 'installing',
      committed: 'committed',
      'rolled-back': 'failed',
      failed: 'failed',
      incompatible: 'skipped',
      removed: 'skipped',
    };
    for (const s of REPORT_STATES) expect(deviceStateForReport(s)).toBe(expected[s]);
    const m = reportStateMapping();
    expect(m.protocol).toHaveLength(REPORT_STATES.length);
    expect(m.device[m.protocol.indexOf('committed')]).toBe('committed');
  });

  it('knows transient failures and backoff', () => {
    expect(isTransientFailure('download-failed')).toBe(true);
    expect(isTransientFailure('health-check-failed')).toBe(false);
    expect(isTransientFailure(null)).toBe(false);
    expect([1, 2, 3].map((a) => retryDelaySeconds(a, 30))).toEqual([30, 60, 120]);
    expect(retryDelaySeconds(40, 30)).toBe(86_400);
  });

  it('treats downloaded as success only for download-only', () => {
    expect(successStates('install')).toEqual(['committed']);
    expect(successStates('download-only')).toEqual(['downloaded', 'committed']);
  });
});
