import { describe, expect, it } from '@jest/globals';
import { decideLease, DEFAULT_LEASE_TIMINGS, leaseSessionSettings, type LeaseTimings, withDeadline } from './driver-lease-policy.js';

const timings: LeaseTimings = { heartbeatMs: 5_000, retryMs: 2_000, checkTimeoutMs: 1_500 };

describe('decideLease', () => {
  it('keeps driving while heartbeats answer, and becomes the driver when it gets the lock', () => {
    expect(decideLease(true, { kind: 'alive' }, timings)).toEqual({ driver: true, dropConnection: false, nextCheckMs: 5_000 });
    expect(decideLease(false, { kind: 'acquired' }, timings)).toEqual({ driver: true, dropConnection: false, nextCheckMs: 5_000 });
  });

  it('stays a candidate on the same connection while another replica holds the lock', () => {
    expect(decideLease(false, { kind: 'not-acquired' }, timings)).toEqual({ driver: false, dropConnection: false, nextCheckMs: 2_000 });
  });

  it('stops driving at once and drops the connection when a heartbeat hangs or fails', () => {
    expect(decideLease(true, { kind: 'timed-out' }, timings)).toEqual({
      driver: false,
      dropConnection: true,
      nextCheckMs: 2_000,
      lost: 'no answer within 1500 ms',
    });
    expect(decideLease(true, { kind: 'failed', reason: 'connection reset' }, timings)).toEqual({
      driver: false,
      dropConnection: true,
      nextCheckMs: 2_000,
      lost: 'connection reset',
    });
  });

  it('drops the connection of a lock attempt that hung (it may hold the lock server-side) and retries later', () => {
    const decision = decideLease(false, { kind: 'timed-out' }, timings);
    expect(decision).toEqual({ driver: false, dropConnection: true, nextCheckMs: 2_000 });
    expect(decision.lost).toBeUndefined();
  });
});

describe('leaseSessionSettings', () => {
  it('cancels checks server-side after the client timeout and ends silent sessions well after a missed heartbeat', () => {
    for (const t of [DEFAULT_LEASE_TIMINGS, timings, { heartbeatMs: 200, retryMs: 200, checkTimeoutMs: 300 }]) {
      const s = leaseSessionSettings(t);
      expect(s.statementTimeoutMs).toBe(t.checkTimeoutMs);
      expect(s.idleSessionTimeoutMs).toBeGreaterThan(2 * t.heartbeatMs + t.checkTimeoutMs);
      expect(s.connectionCheckMs).toBeLessThanOrEqual(t.checkTimeoutMs);
    }
  });
});

describe('withDeadline', () => {
  it('answers the value when it comes in time, and timed-out when it does not', async () => {
    await expect(withDeadline(Promise.resolve(7), 1_000)).resolves.toBe(7);
    await expect(withDeadline(new Promise<never>(() => undefined), 20)).resolves.toBe('timed-out');
    await expect(withDeadline(Promise.reject(new Error('boom')), 1_000)).rejects.toThrow('boom');
  });
});
