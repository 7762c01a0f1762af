import { describe, expect, it } from '@jest/globals';
import { TelemetryException } from './telemetry.exception.js';
import { MAX_SERIES_POINTS, resolveWindow } from './telemetry-query.service.js';

describe('resolveWindow', () => {
  const now = new Date('2026-05-01T12:00:00Z');

  it('defaults to the last hour', () => {
    expect(resolveWindow(undefined, undefined, 60, now)).toEqual({ from: new Date('2026-05-01T11:00:00Z'), to: now });
    expect(resolveWindow(undefined, '2026-05-01T06:00:00Z', undefined, now).from).toEqual(new Date('2026-05-01T05:00:00Z'));
  });

  it('refuses inverted, too long and too finely bucketed windows', () => {
    expect(() => resolveWindow('2026-05-01T12:00:00Z', '2026-05-01T11:00:00Z', 60, now)).toThrow(TelemetryException);
    expect(() => resolveWindow('2026-01-01T00:00:00Z', '2026-05-01T00:00:00Z', undefined, now)).toThrow(/at most 31 days/);
    expect(() => resolveWindow('2026-04-01T00:00:00Z', '2026-04-30T00:00:00Z', 60, now)).toThrow(new RegExp(`at most ${MAX_SERIES_POINTS}`));
    expect(() => resolveWindow(undefined, undefined, 90, now)).toThrow(/multiple of 60/);
    expect(resolveWindow('2026-04-01T00:00:00Z', '2026-04-30T00:00:00Z', 3600, now).to).toEqual(new Date('2026-04-30T00:00:00Z'));
  });
});
