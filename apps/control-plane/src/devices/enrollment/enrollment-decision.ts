import { DeviceErrorCode } from '../devices.exception.js';

/** A token row as locked by the batch's transaction (`SELECT … FOR UPDATE`), before this batch's uses. */
export interface TokenSnapshot {
  id: string;
  name: string;
  maxUses: number | null;
  uses: number;
  revoked: boolean;
  /** Evaluated by the database (`expires_at <= now()`), so replicas with skewed clocks agree. */
  expired: boolean;
  expiresAt: string | null;
  /** Tag keys a device may set itself; absent or empty: none. */
  deviceTagKeys?: readonly string[];
}

/** One enrollment request of a batch, reduced to what the decision needs. */
export interface EnrollAttempt {
  tokenHash: string;
  deviceId: string;
  /** Keys of the tags the device asked for itself. */
  tagKeys?: readonly string[];
}

export type EnrollRefusalCode =
  | DeviceErrorCode.EnrollmentTokenInvalid
  | DeviceErrorCode.EnrollmentTokenRevoked
  | DeviceErrorCode.EnrollmentTokenExpired
  | DeviceErrorCode.EnrollmentTokenUsedUp
  | DeviceErrorCode.EnrollmentTagNotAllowed
  | DeviceErrorCode.DuplicateDevice;

export type EnrollDecision = { accepted: true; tokenId: string } | { accepted: false; code: EnrollRefusalCode; message: string };

export interface BatchDecision {
  /** One decision per attempt, in the attempts' order. */
  decisions: EnrollDecision[];
  /** Uses granted per token id (only tokens that granted at least one). */
  grants: Map<string, number>;
}

/**
 * Decides a batch of enrollments exactly as if they had been committed one by one in arrival
 * order, each in its own transaction (what enrollment did before it was batched):
 *
 * 1. the token must be known, not revoked, not expired, and have a use left after the uses this
 *    batch already granted to earlier attempts (so uses never exceed max_uses);
 * 2. the device id must not belong to a live device (`liveIds`) nor to an earlier attempt of this
 *    batch that was accepted; such an attempt is refused as a duplicate and does NOT take a use
 *    (a refused enrollment never uses a token up).
 *
 * Token checks come first, so an attempt with a used-up token and a taken id is told the token is
 * used up, as before. Pure: no clock, no I/O.
 */
export function decideEnrollments(tokens: ReadonlyMap<string, TokenSnapshot>, attempts: readonly EnrollAttempt[], liveIds: ReadonlySet<string>): BatchDecision {
  const grants = new Map<string, number>();
  const claimed = new Set<string>();
  const decisions = attempts.map((attempt): EnrollDecision => {
    const token = tokens.get(attempt.tokenHash);
    if (!token) return { accepted: false, code: DeviceErrorCode.EnrollmentTokenInvalid, message: 'unknown enrollment token' };
    if (token.revoked) return { accepted: false, code: DeviceErrorCode.EnrollmentTokenRevoked, message: `enrollment token "${token.name}" was revoked` };
    if (token.expired)
      return { accepted: false, code: DeviceErrorCode.EnrollmentTokenExpired, message: `enrollment token "${token.name}" expired at ${token.expiresAt}` };
    const used = token.uses + (grants.get(token.id) ?? 0);
    if (token.maxUses !== null && used >= token.maxUses)
      return {
        accepted: false,
        code: DeviceErrorCode.EnrollmentTokenUsedUp,
        message: `enrollment token "${token.name}" has been used ${used} of ${token.maxUses} times`,
      };
    // Refused rather than dropped: a device that asked for a tag and silently lacks it would be
    // left out of rollouts targeting it, with nobody told why.
    const allowedKeys = new Set(token.deviceTagKeys ?? []);
    const refusedKeys = (attempt.tagKeys ?? []).filter((k) => !allowedKeys.has(k));
    if (refusedKeys.length > 0)
      return {
        accepted: false,
        code: DeviceErrorCode.EnrollmentTagNotAllowed,
        message:
          `enrollment token "${token.name}" does not let devices set the tag${refusedKeys.length > 1 ? 's' : ''} ${refusedKeys.join(', ')}` +
          ` (allowed: ${allowedKeys.size > 0 ? [...allowedKeys].join(', ') : 'none'}); tags come from the token or an operator`,
      };
    if (liveIds.has(attempt.deviceId) || claimed.has(attempt.deviceId))
      return {
        accepted: false,
        code: DeviceErrorCode.DuplicateDevice,
        message: `device ${attempt.deviceId} is already enrolled; decommission it first to enroll it again`,
      };
    claimed.add(attempt.deviceId);
    grants.set(token.id, (grants.get(token.id) ?? 0) + 1);
    return { accepted: true, tokenId: token.id };
  });
  return { decisions, grants };
}
