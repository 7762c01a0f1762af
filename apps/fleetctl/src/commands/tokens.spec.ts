import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../exit-codes.js';
import { parseDuration } from './tokens.js';

describe('parseDuration', () => {
  it('reads seconds and s/m/h/d suffixes', () => {
    expect([parseDuration('3600'), parseDuration('90s'), parseDuration('30m'), parseDuration('12h'), parseDuration('7d')]).toEqual([
      3600, 90, 1800, 43_200, 604_800,
    ]);
  });

  it('refuses anything else', () => {
    for (const bad of ['', '7w', '-1', '1.5h', 'soon', '0']) expect(() => parseDuration(bad)).toThrow(UsageError);
  });
});
