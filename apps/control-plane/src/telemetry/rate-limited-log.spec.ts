import { describe, expect, it } from '@jest/globals';
import { RateLimitedLog } from './rate-limited-log.js';

describe('RateLimitedLog', () => {
  it('logs once per interval and reports how many lines it suppressed', () => {
    const lines: string[] = [];
    let now = 0;
    const log = new RateLimitedLog({ warn: (m: string) => void lines.push(m) }, 1000, () => now);
    now = 5000;
    log.warn('a');
    now = 5100;
    log.warn('b');
    log.warn('c');
    now = 6200;
    log.warn('d');
    expect(lines).toEqual(['a', 'd (2 similar messages suppressed)']);
  });
});
