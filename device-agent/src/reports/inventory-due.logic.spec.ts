import { describe, expect, it } from '@jest/globals';
import type { Inventory } from '@fleetline/protocol';
import { INVENTORY_REFRESH_MS, inventoryDigest, inventoryIsDue } from './inventory-due.logic.js';

const inventory: Inventory = {
  hardwareClass: 'jetson',
  os: 'linux',
  arch: 'arm64',
  accelerators: ['cuda'],
  agentVersion: '0.2.0',
  runtimes: { onnx: '1.20.0', command: '1' },
};

describe('inventory due on (re)connection', () => {
  it('digests the same inventory alike whatever the key order, and tells changes apart', () => {
    const reordered = {
      runtimes: { command: '1', onnx: '1.20.0' },
      agentVersion: '0.2.0',
      accelerators: ['cuda'],
      arch: 'arm64',
      os: 'linux',
      hardwareClass: 'jetson',
    } as Inventory;
    expect(inventoryDigest(reordered)).toBe(inventoryDigest(inventory));
    expect(inventoryDigest({ ...inventory, agentVersion: '0.2.1' })).not.toBe(inventoryDigest(inventory));
    expect(inventoryDigest({ ...inventory, runtimes: { onnx: '1.21.0', command: '1' } })).not.toBe(inventoryDigest(inventory));
  });

  it('is due when none was sent, when it changed, and once the refresh period passed', () => {
    const digest = inventoryDigest(inventory);
    const now = 10 * INVENTORY_REFRESH_MS;
    expect(inventoryIsDue(undefined, digest, now)).toBe(true);
    expect(inventoryIsDue({ digest: 'other', at: now - 1000 }, digest, now)).toBe(true);
    expect(inventoryIsDue({ digest, at: now - 1000 }, digest, now)).toBe(false);
    expect(inventoryIsDue({ digest, at: now - INVENTORY_REFRESH_MS }, digest, now)).toBe(true);
    // A clock set back (no NTP yet at the last send): send rather than trust a future timestamp.
    expect(inventoryIsDue({ digest, at: now + 60_000 }, digest, now)).toBe(true);
  });
});
