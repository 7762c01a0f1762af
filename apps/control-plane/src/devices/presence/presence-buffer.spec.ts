import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { PresenceBuffer, type PresenceEvent, type PresenceState, presenceTime, supersedes } from './presence-buffer.js';

const ev = (deviceId: string, online: boolean, at: number, session: string | null = null, replica: string | null = null): PresenceEvent => ({
  deviceId,
  online,
  at: new Date(at),
  session,
  replica,
});

describe('supersedes', () => {
  const online = (at: number, session: string | null): PresenceState => ({ online: true, at: new Date(at), session });
  const offline = (at: number, session: string | null): PresenceState => ({ online: false, at: new Date(at), session });

  it('an offline ends only its own session, whatever its time', () => {
    expect(supersedes(online(1000, 'b'), offline(9000, 'a'))).toBe(false); // old connection's will after a reconnect elsewhere
    expect(supersedes(online(1000, 'a'), offline(2000, 'a'))).toBe(true);
    expect(supersedes(online(3000, 'a'), offline(2000, 'a'))).toBe(true); // same session: it has ended
  });

  it('an online of a new session replaces an offline of another session even when its clock is behind', () => {
    expect(supersedes(offline(5000, 'a'), online(4000, 'b'))).toBe(true);
    expect(supersedes(offline(5000, 'a'), online(4000, 'a'))).toBe(false); // late duplicate of the ended session
  });

  it('an older online never replaces a newer online', () => {
    expect(supersedes(online(5000, 'b'), online(4000, 'a'))).toBe(false);
    expect(supersedes(online(4000, 'a'), online(5000, 'b'))).toBe(true);
  });

  it('without sessions the newer time wins (older agents, rows stored before sessions)', () => {
    expect(supersedes(online(1000, null), offline(2000, null))).toBe(true);
    expect(supersedes(online(3000, null), offline(2000, null))).toBe(false);
    expect(supersedes(online(1000, null), offline(2000, 'a'))).toBe(true);
  });

  it('a device that reconnected elsewhere is online after any interleaving of the old will and the new hello', () => {
    // Old session a (connected at t0), new session b (connected at t1 > t0); a's will comes at any time.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.boolean(),
        (t0, d, willAt, willFirst) => {
          const start: PresenceState = { online: true, at: new Date(t0), session: 'a' };
          const will: PresenceState = { online: false, at: new Date(willAt), session: 'a' };
          const hello: PresenceState = { online: true, at: new Date(t0 + d), session: 'b' };
          let state = start;
          for (const e of willFirst ? [will, hello] : [hello, will]) if (supersedes(state, e)) state = e;
          return state.online && state.session === 'b';
        },
      ),
    );
  });
});

describe('PresenceBuffer', () => {
  it('keeps the event that supersedes per device; on a tie the later arrival wins', () => {
    const buffer = new PresenceBuffer();
    buffer.add(ev('a', true, 2000));
    buffer.add(ev('a', false, 1000)); // older: ignored
    buffer.add(ev('b', false, 5000, 's1', 'r1'));
    buffer.add(ev('b', true, 5000, 's2', 'r2')); // same ms: session takeover
    buffer.add(ev('b', false, 6000, 's1', 'r1')); // the replaced session's disconnect: ignored
    expect(buffer.size).toBe(2);
    expect(buffer.drain()).toEqual({
      ids: ['a', 'b'],
      online: [true, true],
      at: [new Date(2000).toISOString(), new Date(5000).toISOString()],
      session: [null, 's2'],
      replica: [null, 'r2'],
    });
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
