import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { membershipKey, orderMembers } from './membership.js';

describe('deterministic wave membership', () => {
  const rolloutId = '6f1c1c34-1a0e-4a8e-9b3c-2a3f5c6d7e8f';
  const ids = Array.from({ length: 200 }, (_, i) => `dev-${i}`);

  it('is md5(rolloutId:deviceId), the same expression the SQL orders by', () => {
    expect(membershipKey(rolloutId, 'dev-1')).toBe(createHash('md5').update(`${rolloutId}:dev-1`).digest('hex'));
  });

  it('orders the same target identically every time, whatever the input order', () => {
    const a = orderMembers(rolloutId, ids);
    const b = orderMembers(rolloutId, [...ids].reverse());
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(ids.length);
  });

  it('shuffles differently per rollout (a canary is not always the same devices)', () => {
    const first = orderMembers(rolloutId, ids).slice(0, 10);
    const other = orderMembers('0d6c1e1f-0000-4000-8000-000000000000', ids).slice(0, 10);
    expect(first).not.toEqual(other);
  });

  it('keeps earlier members in place when the target grows (slices stay stable)', () => {
    const base = orderMembers(rolloutId, ids);
    const grown = orderMembers(rolloutId, [...ids, 'dev-new']);
    expect(grown.filter((id) => id !== 'dev-new')).toEqual(base);
  });
});
