import { describe, expect, it } from '@jest/globals';
import { CredentialCache } from './credential-cache.js';
import { RateLimitedLog } from '../../infra/logging/rate-limited-log.js';

describe('CredentialCache', () => {
  it('expires entries after the ttl', () => {
    let now = 0;
    const cache = new CredentialCache(1000, 10, () => now);
    cache.set('a', 'h');
    expect(cache.get('a')).toBe('h');
    now = 1000;
    expect(cache.get('a')).toBeUndefined();
  });

  it('evicts the least recently used entry when full, and on delete', () => {
    const cache = new CredentialCache(60_000, 2);
    cache.set('a', '1');
    cache.set('b', '2');
    expect(cache.get('a')).toBe('1'); // a is now the most recent
    cache.set('c', '3');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('1');
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(1);
  });
});

describe('RateLimitedLog', () => {
  it('logs once per key and interval and reports what it suppressed', () => {
    let now = 0;
    const lines: string[] = [];
    const log = new RateLimitedLog({ warn: (m: unknown) => void lines.push(String(m)) }, 1000, 10, () => now);
    log.warn('k', 'bad');
    log.warn('k', 'bad');
    log.warn('k', 'bad');
    log.warn('other', 'x');
    now = 1000;
    log.warn('k', 'bad');
    expect(lines).toEqual(['bad', 'x', 'bad (2 similar suppressed)']);
  });
});
