import { createHash } from 'node:crypto';
import type { Inventory } from '@fleetline/protocol';

/** The inventory the agent last handed to its (durable) outbox, and when. */
export interface SentInventory {
  digest: string;
  at: number;
}

/** At least this often the inventory goes out unchanged, so a control plane restored from an older backup catches up. */
export const INVENTORY_REFRESH_MS = 24 * 3600 * 1000;

/** Order-independent digest of an inventory: object keys sorted at every level. */
export function inventoryDigest(inventory: Inventory): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>)
          .filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, v]) => [k, canonical(v)]),
      );
    }
    return value;
  };
  return createHash('sha256')
    .update(JSON.stringify(canonical(inventory)))
    .digest('hex');
}

/**
 * Whether a (re)connection sends the inventory: when it changed since the last one queued, when
 * none was queued yet, or when the last one is older than the refresh period (Mender's client sends
 * its inventory on change and on a long timer in the same way). Asked for (`report-inventory`), it
 * always goes. Sending it on every reconnection cost every device a QoS 1 message and the control
 * plane a database write each, for nothing, in every reconnect storm.
 */
export function inventoryIsDue(last: SentInventory | undefined, digest: string, now: number, refreshMs = INVENTORY_REFRESH_MS): boolean {
  if (!last || last.digest !== digest) return true;
  return now - last.at >= refreshMs || now < last.at;
}
