import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { DeviceErrorCode } from '../devices.exception.js';
import { type EnrollAttempt, type EnrollDecision, decideEnrollments, type TokenSnapshot } from './enrollment-decision.js';

function token(id: string, patch: Partial<TokenSnapshot> = {}): TokenSnapshot {
  return { id, name: `token-${id}`, maxUses: null, uses: 0, revoked: false, expired: false, expiresAt: null, ...patch };
}

const byHash = (...tokens: [string, TokenSnapshot][]): Map<string, TokenSnapshot> => new Map(tokens);
const codes = (decisions: EnrollDecision[]): (string | true)[] => decisions.map((d) => (d.accepted ? true : d.code));

/**
 * The reference: enrollment as it was before batching, one transaction per request in arrival
 * order (take a use if the token is valid and not used up, insert the device, and roll the use
 * back when the id is taken).
 */
function serialReference(tokens: ReadonlyMap<string, TokenSnapshot>, attempts: readonly EnrollAttempt[], live: ReadonlySet<string>) {
  const uses = new Map([...tokens.values()].map((t) => [t.id, t.uses]));
  const devices = new Set(live);
  const out: (string | true)[] = [];
  for (const a of attempts) {
    const t = tokens.get(a.tokenHash);
    if (!t) out.push(DeviceErrorCode.EnrollmentTokenInvalid);
    else if (t.revoked) out.push(DeviceErrorCode.EnrollmentTokenRevoked);
    else if (t.expired) out.push(DeviceErrorCode.EnrollmentTokenExpired);
    else if (t.maxUses !== null && uses.get(t.id)! >= t.maxUses) out.push(DeviceErrorCode.EnrollmentTokenUsedUp);
    else if (devices.has(a.deviceId)) out.push(DeviceErrorCode.DuplicateDevice);
    else {
      uses.set(t.id, uses.get(t.id)! + 1);
      devices.add(a.deviceId);
      out.push(true);
    }
  }
  return { out, uses };
}

describe('decideEnrollments', () => {
  it('grants uses in arrival order up to max_uses and refuses the rest as used up', () => {
    const tokens = byHash(['h1', token('t1', { maxUses: 3, uses: 1 })]);
    const attempts = ['a', 'b', 'c', 'd'].map((deviceId) => ({ tokenHash: 'h1', deviceId }));
    const { decisions, grants } = decideEnrollments(tokens, attempts, new Set());
    expect(codes(decisions)).toEqual([true, true, DeviceErrorCode.EnrollmentTokenUsedUp, DeviceErrorCode.EnrollmentTokenUsedUp]);
    expect(grants).toEqual(new Map([['t1', 2]]));
    expect(decisions[2]).toMatchObject({ message: 'enrollment token "token-t1" has been used 3 of 3 times' });
  });

  it('refuses unknown, revoked and expired tokens with their codes and grants nothing for them', () => {
    const tokens = byHash(
      ['rev', token('t-rev', { revoked: true })],
      ['exp', token('t-exp', { expired: true, expiresAt: '2026-01-01T00:00:00.000Z' })],
      // Revoked wins over expired, which wins over used up (the order single enrollments used).
      ['both', token('t-both', { revoked: true, expired: true, maxUses: 1, uses: 1 })],
    );
    const { decisions, grants } = decideEnrollments(
      tokens,
      [
        { tokenHash: 'nope', deviceId: 'a' },
        { tokenHash: 'rev', deviceId: 'b' },
        { tokenHash: 'exp', deviceId: 'c' },
        { tokenHash: 'both', deviceId: 'd' },
      ],
      new Set(),
    );
    expect(codes(decisions)).toEqual([
      DeviceErrorCode.EnrollmentTokenInvalid,
      DeviceErrorCode.EnrollmentTokenRevoked,
      DeviceErrorCode.EnrollmentTokenExpired,
      DeviceErrorCode.EnrollmentTokenRevoked,
    ]);
    expect(decisions[2]).toMatchObject({ message: 'enrollment token "token-t-exp" expired at 2026-01-01T00:00:00.000Z' });
    expect(grants.size).toBe(0);
  });

  it('refuses a live id and a repeated id as duplicates without taking a use, so a later request gets it', () => {
    const tokens = byHash(['h', token('t', { maxUses: 2 })]);
    const { decisions, grants } = decideEnrollments(
      tokens,
      [
        { tokenHash: 'h', deviceId: 'live-1' },
        { tokenHash: 'h', deviceId: 'x' },
        { tokenHash: 'h', deviceId: 'x' },
        { tokenHash: 'h', deviceId: 'y' },
        { tokenHash: 'h', deviceId: 'z' },
      ],
      new Set(['live-1']),
    );
    expect(codes(decisions)).toEqual([DeviceErrorCode.DuplicateDevice, true, DeviceErrorCode.DuplicateDevice, true, DeviceErrorCode.EnrollmentTokenUsedUp]);
    expect(grants).toEqual(new Map([['t', 2]]));
  });

  it('refuses tags the token does not let devices set, without taking a use or the id', () => {
    const tokens = byHash(['h', token('t', { maxUses: 2, deviceTagKeys: ['camera'] })]);
    const { decisions, grants } = decideEnrollments(
      tokens,
      [
        { tokenHash: 'h', deviceId: 'x', tagKeys: ['camera', 'ring'] },
        { tokenHash: 'h', deviceId: 'x', tagKeys: ['camera'] },
        { tokenHash: 'h', deviceId: 'y', tagKeys: [] },
      ],
      new Set(),
    );
    expect(codes(decisions)).toEqual([DeviceErrorCode.EnrollmentTagNotAllowed, true, true]);
    expect(decisions[0]).toMatchObject({ message: expect.stringContaining('ring') });
    expect(grants).toEqual(new Map([['t', 2]]));
    // No allow-list: any tag is refused.
    const none = decideEnrollments(byHash(['n', token('n')]), [{ tokenHash: 'n', deviceId: 'z', tagKeys: ['site'] }], new Set());
    expect(codes(none.decisions)).toEqual([DeviceErrorCode.EnrollmentTagNotAllowed]);
  });

  it('lets a request use an id that an earlier request of the batch was refused for', () => {
    const tokens = byHash(['full', token('t1', { maxUses: 1, uses: 1 })], ['ok', token('t2')]);
    const { decisions } = decideEnrollments(
      tokens,
      [
        { tokenHash: 'full', deviceId: 'x' },
        { tokenHash: 'ok', deviceId: 'x' },
      ],
      new Set(),
    );
    expect(codes(decisions)).toEqual([DeviceErrorCode.EnrollmentTokenUsedUp, true]);
  });

  describe('properties', () => {
    const tokenArb = fc.record({
      maxUses: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }),
      uses: fc.integer({ min: 0, max: 8 }),
      revoked: fc.boolean(),
      expired: fc.boolean(),
    });
    const scenario = fc
      .record({
        tokens: fc.array(tokenArb, { minLength: 1, maxLength: 4 }),
        attempts: fc.array(fc.record({ token: fc.integer({ min: 0, max: 4 }), device: fc.integer({ min: 0, max: 12 }) }), { maxLength: 60 }),
        live: fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { maxLength: 4 }),
      })
      .map(({ tokens, attempts, live }) => ({
        // Index 4 (and any index past the generated tokens) is a hash no token has.
        tokens: new Map(tokens.map((t, i): [string, TokenSnapshot] => [`h${i}`, token(`t${i}`, { ...t, uses: Math.min(t.uses, t.maxUses ?? t.uses) })])),
        attempts: attempts.map((a) => ({ tokenHash: `h${a.token}`, deviceId: `d${a.device}` })),
        live: new Set(live.map((d) => `d${d}`)),
      }));

    it('decides exactly as one-by-one enrollment in arrival order would', () => {
      fc.assert(
        fc.property(scenario, ({ tokens, attempts, live }) => {
          const { decisions, grants } = decideEnrollments(tokens, attempts, live);
          const reference = serialReference(tokens, attempts, live);
          expect(codes(decisions)).toEqual(reference.out);
          for (const t of tokens.values()) expect(t.uses + (grants.get(t.id) ?? 0)).toBe(reference.uses.get(t.id));
        }),
        { numRuns: 500 },
      );
    });

    it('never lets uses exceed max_uses, grants only to valid tokens, and counts every grant', () => {
      fc.assert(
        fc.property(scenario, ({ tokens, attempts, live }) => {
          const { decisions, grants } = decideEnrollments(tokens, attempts, live);
          const byId = new Map([...tokens.values()].map((t) => [t.id, t]));
          for (const [id, n] of grants) {
            const t = byId.get(id)!;
            expect(n).toBeGreaterThan(0);
            expect(t.revoked || t.expired).toBe(false);
            if (t.maxUses !== null) expect(t.uses + n).toBeLessThanOrEqual(t.maxUses);
          }
          const accepted = decisions.filter((d) => d.accepted);
          expect(accepted.length).toBe([...grants.values()].reduce((a, b) => a + b, 0));
          // Accepted ids are distinct and none is live.
          const ids = attempts.filter((_, i) => decisions[i]!.accepted).map((a) => a.deviceId);
          expect(new Set(ids).size).toBe(ids.length);
          for (const id of ids) expect(live.has(id)).toBe(false);
        }),
        { numRuns: 500 },
      );
    });

    it('respects arrival order: once a token refuses a request as used up, it accepts no later one', () => {
      fc.assert(
        fc.property(scenario, ({ tokens, attempts, live }) => {
          const { decisions } = decideEnrollments(tokens, attempts, live);
          const usedUp = new Set<string>();
          attempts.forEach((a, i) => {
            const d = decisions[i]!;
            if (d.accepted) expect(usedUp.has(a.tokenHash)).toBe(false);
            else if (d.code === DeviceErrorCode.EnrollmentTokenUsedUp) usedUp.add(a.tokenHash);
          });
        }),
        { numRuns: 500 },
      );
    });
  });
});
