import { describe, expect, it } from '@jest/globals';
import { rampAllowance, validateWaveSizes, waveBoundaries, waveLowOrdinals, waveOfOrdinal, waveSizes } from './wave-math.js';

describe('wave math (cumulative slices)', () => {
  it('turns cumulative percents 1, 10, 100 into waves of 1 %, 9 %, 90 %', () => {
    const b = waveBoundaries([{ percent: 1 }, { percent: 10 }, { percent: 100 }], 1000);
    expect(b).toEqual([10, 100, 1000]);
    expect(waveSizes(b)).toEqual([10, 90, 900]);
  });

  it('rounds percent slices up and avoids floating point surprises', () => {
    expect(waveBoundaries([{ percent: 7 }, { percent: 100 }], 100)).toEqual([7, 100]);
    expect(waveBoundaries([{ percent: 33.3 }, { percent: 66.6 }, { percent: 100 }], 10)).toEqual([4, 7, 10]);
  });

  it('puts at least one device into the first wave of a tiny target', () => {
    expect(waveBoundaries([{ percent: 1 }, { percent: 10 }, { percent: 100 }], 3)).toEqual([1, 1, 3]);
    expect(waveSizes([1, 1, 3])).toEqual([1, 0, 2]);
    expect(waveBoundaries([{ percent: 0.001 }, { percent: 100 }], 1)).toEqual([1, 1]);
  });

  it('gives empty waves for an empty target', () => {
    expect(waveBoundaries([{ percent: 1 }, { percent: 100 }], 0)).toEqual([0, 0]);
  });

  it('handles cumulative counts followed by a percent, capped at the target', () => {
    expect(waveBoundaries([{ count: 5 }, { count: 50 }, { percent: 100 }], 20)).toEqual([5, 20, 20]);
    expect(waveSizes(waveBoundaries([{ count: 5 }, { count: 50 }, { percent: 100 }], 200))).toEqual([5, 45, 150]);
  });

  it('maps ordinals to waves like SQL width_bucket over the low ordinals', () => {
    const b = [1, 1, 3];
    expect(waveLowOrdinals(b)).toEqual([1, 2, 2]);
    expect([1, 2, 3].map((o) => waveOfOrdinal(b, o))).toEqual([0, 2, 2]);
    // width_bucket(o, lows) - 1 counts the lows <= o: same answers.
    const widthBucket = (o: number, lows: number[]): number => lows.filter((l) => l <= o).length - 1;
    expect([1, 2, 3].map((o) => widthBucket(o, waveLowOrdinals(b)))).toEqual([0, 2, 2]);
    expect(waveOfOrdinal(b, 4)).toBe(-1);
  });

  it('validates wave lists', () => {
    expect(validateWaveSizes([{ percent: 1 }, { percent: 10 }, { percent: 100 }], true)).toEqual([]);
    expect(validateWaveSizes([], true)).toEqual(['at least one wave is required']);
    expect(validateWaveSizes([{ percent: 10 }, { percent: 5 }, { percent: 100 }], true)[0]).toMatch(/greater than the previous/);
    expect(validateWaveSizes([{ percent: 10 }, { percent: 50 }], true)[0]).toMatch(/last wave must be/);
    expect(validateWaveSizes([{ percent: 10 }, { percent: 50 }], false)).toEqual([]);
    expect(validateWaveSizes([{ percent: 10, count: 3 }, { percent: 100 }], true)[0]).toMatch(/exactly one/);
    expect(validateWaveSizes([{ percent: 10 }, { count: 100 }, { percent: 100 }], true)[0]).toMatch(/cannot follow a percent/);
    expect(validateWaveSizes([{ percent: 0 }, { percent: 100 }], true)[0]).toMatch(/\(0, 100\]/);
    expect(validateWaveSizes([{ count: 5 }, { count: 5 }, { percent: 100 }], true)[0]).toMatch(/greater than the previous/);
  });
});

describe('exponential ramp', () => {
  const ramp = { ratePerMinute: 10, growthFactor: 2 };

  it('allows rate·g^i in minute i, partial minutes pro rata', () => {
    expect(rampAllowance(0, ramp)).toBe(1);
    expect(rampAllowance(30_000, ramp)).toBe(5);
    expect(rampAllowance(60_000, ramp)).toBe(10);
    expect(rampAllowance(120_000, ramp)).toBe(30);
    expect(rampAllowance(150_000, ramp)).toBe(50);
    expect(rampAllowance(180_000, ramp)).toBe(70);
  });

  it('is linear with growth factor 1 and never overflows', () => {
    expect(rampAllowance(180_000, { ratePerMinute: 10, growthFactor: 1 })).toBe(30);
    expect(rampAllowance(1000 * 60_000, { ratePerMinute: 1_000_000, growthFactor: 10 })).toBe(Number.MAX_SAFE_INTEGER);
  });
});
