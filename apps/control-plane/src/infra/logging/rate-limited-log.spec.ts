import { describe, expect, it } from '@jest/globals';
import { RateLimitedLog } from './rate-limited-log.js';

describe('RateLimitedLog', () => {
  it('logs once per key and interval and reports how many lines it suppressed', () => {
    const lines: string[] = [];
    let now = 0;
    const log = new RateLimitedLog({ warn: (m: string) => void lines.push(m) }, 1000, 1000, () => now);
    now = 5000;
    log.warn('bad', 'a');
    now = 5100;
    log.warn('bad', 'b');
    log.warn('bad', 'c');
    log.warn('other', 'x');
    now = 6200;
    log.warn('bad', 'd');
    expect(lines).toEqual(['a', 'x', 'd (2 similar suppressed)']);
  });

  it('forgets the oldest key past its key bound, so a flood of distinct devices cannot grow it', () => {
    const lines: string[] = [];
    const log = new RateLimitedLog({ warn: (m: string) => void lines.push(m) }, 60_000, 2, () => 0);
    log.warn('d1', '1');
    log.warn('d2', '2');
    log.warn('d3', '3'); // evicts d1
    log.warn('d1', '1 again');
    log.warn('d3', 'suppressed');
    expect(lines).toEqual(['1', '2', '3', '1 again']);
  });
});
