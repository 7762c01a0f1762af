/**
 * Decisions of the rollout driver lease (driver-lease.ts), as pure functions.
 *
 * The lease is a session advisory lock on one dedicated PostgreSQL connection. Every check on it
 * (heartbeat when driving, lock attempt when not) either answers, fails, or does not answer in
 * time. A replica that cannot prove within `checkTimeoutMs` that its session is alive must stop
 * driving at once: PostgreSQL may already have ended the session (and handed the lock to another
 * replica), and a hung connection must never keep a replica driving forever.
 */
export interface LeaseTimings {
  /** Heartbeat period while driving. */
  heartbeatMs: number;
  /** Period of lock attempts while not driving (and after losing the lease). */
  retryMs: number;
  /** A check (connect, heartbeat, lock attempt) that has not answered by then counts as failed. */
  checkTimeoutMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { heartbeatMs: 5_000, retryMs: 2_000, checkTimeoutMs: 2_000 };

export type LeaseCheck = { kind: 'alive' } | { kind: 'acquired' } | { kind: 'not-acquired' } | { kind: 'failed'; reason: string } | { kind: 'timed-out' };

export interface LeaseDecision {
  driver: boolean;
  /** Destroy the lease connection (ending the session releases the advisory lock server-side). */
  dropConnection: boolean;
  /** When to check again. */
  nextCheckMs: number;
  /** Set when the replica stops driving, for the log. */
  lost?: string;
}

/** What to do after a check, given whether this replica was driving when it started the check. */
export function decideLease(wasDriver: boolean, check: LeaseCheck, timings: LeaseTimings): LeaseDecision {
  switch (check.kind) {
    case 'alive':
      // A heartbeat only proves the lease of a driver; "alive" while not driving keeps it a candidate.
      return wasDriver ? { driver: true, dropConnection: false, nextCheckMs: timings.heartbeatMs } : candidate(timings, false);
    case 'acquired':
      return { driver: true, dropConnection: false, nextCheckMs: timings.heartbeatMs };
    case 'not-acquired':
      // Another replica holds the lock; keep the connection for the next attempt.
      return candidate(timings, false);
    case 'failed':
    case 'timed-out': {
      const reason = check.kind === 'failed' ? check.reason : `no answer within ${timings.checkTimeoutMs} ms`;
      // A lock attempt that timed out may still have taken the lock server-side: dropping the
      // connection releases it whatever happened.
      return { ...candidate(timings, true), ...(wasDriver ? { lost: reason } : {}) };
    }
  }
}

function candidate(timings: LeaseTimings, dropConnection: boolean): LeaseDecision {
  return { driver: false, dropConnection, nextCheckMs: timings.retryMs };
}

/**
 * Server-side limits of the lease session (PostgreSQL GUCs), so the server ends it on its own
 * when the replica or the network is gone:
 *  - statement_timeout: a check stuck in the server (lock wait, overload) is cancelled;
 *  - idle_session_timeout (PostgreSQL 14+): a session nobody heart-beats any more (client
 *    vanished behind a dead link) ends, releasing the lock; well above the heartbeat period so a
 *    healthy driver is never cut off;
 *  - client_connection_check_interval (PostgreSQL 14+): a running statement notices that the
 *    client closed the connection.
 */
export function leaseSessionSettings(timings: LeaseTimings): { statementTimeoutMs: number; idleSessionTimeoutMs: number; connectionCheckMs: number } {
  return {
    statementTimeoutMs: timings.checkTimeoutMs,
    idleSessionTimeoutMs: 3 * timings.heartbeatMs + timings.checkTimeoutMs,
    connectionCheckMs: Math.max(100, Math.min(1_000, timings.checkTimeoutMs)),
  };
}

/** Resolves with the promise's value, or with `'timed-out'` when it has not settled within `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | 'timed-out'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timed-out'>((resolve) => {
    timer = setTimeout(() => resolve('timed-out'), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
