import { describe, expect, it } from '@jest/globals';
import { PresenceBuffer, presenceTime } from './presence-buffer.js';

describe('PresenceBuffer', () => {
  it('keeps the newest event per device; on a tie the later arrival wins', () => {
    const buffer = new PresenceBuffer();
    buffer.add({ deviceId: 'a', online: true, at: new Date(2000) });
    buffer.add({ deviceId: 'a', online: false, at: new Date(1000) }); // older: ignored
    buffer.add({ deviceId: 'b', online: false, at: new Date(5000) });
    buffer.add({ deviceId: 'b', online: true, at: new Date(5000) }); // same ms: session takeover
    expect(buffer.size).toBe(2);
    expect(buffer.drain()).toEqual({ ids: ['a', 'b'], online: [true, true], at: [new Date(2000).toISOString(), new Date(5000).toISOString()] });
    expect(buffer.size).toBe(0);
  });
});

describe('presenceTime', () => {
  const received = new Date('2026-01-01T00:00:10Z');

  it('uses the message time when present and not in the future', () => {
    expect(presenceTime('2026-01-01T00:00:05Z', received).toISOString()).toBe('2026-01-01T00:00:05.000Z');
  });

  it('falls back to the receive time for wills without time, future times and garbage', () => {
    expect(presenceTime(undefined, received)).toBe(received);
    expect(presenceTime('2026-01-01T00:01:00Z', received)).toBe(received);
    expect(presenceTime('not a date', received)).toBe(received);
  });
});
