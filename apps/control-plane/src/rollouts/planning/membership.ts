import { createHash } from 'node:crypto';

/**
 * Deterministic wave membership: the target is ordered by md5(rolloutId || ':' || deviceId)
 * (device id breaks ties) and wave k takes the next slice. The SQL that materialises
 * rollout_devices uses exactly this expression (MEMBERSHIP_ORDER_SQL), so a restart or a replay
 * computes the same waves, and this function lets tests and tools reproduce them.
 */
export function membershipKey(rolloutId: string, deviceId: string): string {
  return createHash('md5').update(`${rolloutId}:${deviceId}`).digest('hex');
}

/** `ORDER BY` of the materialising INSERT ... SELECT; `$1` is the rollout id, `d.id` the device id (COLLATE "C"). */
export const MEMBERSHIP_ORDER_SQL = `md5($1::text || ':' || d.id) COLLATE "C", d.id`;

/** Orders device ids the way the database does. */
export function orderMembers(rolloutId: string, deviceIds: readonly string[]): string[] {
  const keyed = deviceIds.map((id) => ({ id, key: membershipKey(rolloutId, id) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return keyed.map((k) => k.id);
}
