import { describe, expect, it } from '@jest/globals';
import { acceptedWindow, dayOfPartition, daysAround, expiredPartitions, partitionBounds, partitionDay, partitionName } from './telemetry-partitions.js';

describe('telemetry partitions', () => {
  const now = new Date('2026-03-10T12:00:00Z');

  it('names daily UTC partitions and parses them back', () => {
    expect(partitionDay(new Date('2026-03-09T23:59:59.999Z'))).toBe('2026-03-09');
    expect(partitionName('2026-03-09')).toBe('telemetry_samples_p20260309');
    expect(dayOfPartition('telemetry_samples_p20260309')).toBe('2026-03-09');
    expect(dayOfPartition('telemetry_samples')).toBeUndefined();
    expect(() => partitionName("x'; DROP TABLE")).toThrow();
    expect(partitionBounds('2026-03-09')).toEqual({ from: '2026-03-09T00:00:00.000Z', to: '2026-03-10T00:00:00.000Z' });
  });

  it('lists days around now', () => {
    expect(daysAround(now, 1, 2)).toEqual(['2026-03-09', '2026-03-10', '2026-03-11', '2026-03-12']);
  });

  it('accepts interval ends from the start of the oldest retained day to a day ahead', () => {
    const w = acceptedWindow(now, 7);
    expect(w.from.toISOString()).toBe('2026-03-03T00:00:00.000Z');
    expect(w.to.toISOString()).toBe('2026-03-11T12:00:00.000Z');
  });

  it('expires partitions that end before the retained window', () => {
    const names = ['telemetry_samples_p20260301', 'telemetry_samples_p20260302', 'telemetry_samples_p20260303', 'telemetry_samples_p20260310', 'other'];
    expect(expiredPartitions(names, now, 7)).toEqual(['telemetry_samples_p20260301', 'telemetry_samples_p20260302']);
  });
});
