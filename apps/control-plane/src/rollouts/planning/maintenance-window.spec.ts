import { describe, expect, it } from '@jest/globals';
import { inMaintenanceWindow, nextWindowOpening, validateMaintenanceWindow } from './maintenance-window.js';

describe('maintenance windows', () => {
  // 02:00-04:00 every night, Berlin time.
  const berlin = { cron: '0 2 * * *', durationSeconds: 7200, timeZone: 'Europe/Berlin' };

  it('is always open without windows', () => {
    expect(inMaintenanceWindow([], new Date())).toBe(true);
  });

  it('follows the window time zone in winter (UTC+1)', () => {
    expect(inMaintenanceWindow([berlin], new Date('2026-01-15T01:30:00Z'))).toBe(true); // 02:30 Berlin
    expect(inMaintenanceWindow([berlin], new Date('2026-01-15T00:59:00Z'))).toBe(false); // 01:59 Berlin
    expect(inMaintenanceWindow([berlin], new Date('2026-01-15T03:00:00Z'))).toBe(false); // 04:00 Berlin: end is exclusive
    expect(inMaintenanceWindow([berlin], new Date('2026-01-15T02:59:00Z'))).toBe(true); // 03:59 Berlin
  });

  it('follows daylight saving time in summer (UTC+2)', () => {
    expect(inMaintenanceWindow([berlin], new Date('2026-07-15T00:30:00Z'))).toBe(true); // 02:30 Berlin
    expect(inMaintenanceWindow([berlin], new Date('2026-07-15T02:30:00Z'))).toBe(false); // 04:30 Berlin
  });

  it('opens when any window is open and tells when the next opens', () => {
    const tokyo = { cron: '0 12 * * *', durationSeconds: 3600, timeZone: 'Asia/Tokyo' };
    expect(inMaintenanceWindow([berlin, tokyo], new Date('2026-01-15T03:30:00Z'))).toBe(true); // 12:30 Tokyo
    expect(nextWindowOpening([berlin], new Date('2026-01-15T12:00:00Z'))?.toISOString()).toBe('2026-01-16T01:00:00.000Z');
  });

  it('validates cron, zone and duration', () => {
    expect(validateMaintenanceWindow(berlin)).toBeUndefined();
    expect(validateMaintenanceWindow({ ...berlin, cron: 'not a cron' })).toMatch(/invalid cron/);
    expect(validateMaintenanceWindow({ ...berlin, timeZone: 'Mars/Olympus' })).toMatch(/unknown time zone/);
    expect(validateMaintenanceWindow({ ...berlin, durationSeconds: 10 })).toMatch(/durationSeconds/);
  });
});
