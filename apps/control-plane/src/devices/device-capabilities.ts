import type { DeviceCapabilities } from '@fleetline/protocol';

/**
 * The part of a stored inventory compatibility depends on, as one jsonb text per device (`d` is
 * the devices row). Builds are chosen once per DISTINCT projection (a fleet has few
 * hardware/runtime/agent combinations), so a batch of thousands of devices costs one grouped
 * query and a handful of selectVariant calls. jsonb text is canonical for equal values.
 */
export const COMPATIBILITY_KEY_SQL = `jsonb_build_object('hardwareClass', d.inventory->'hardwareClass', 'agentVersion', d.inventory->'agentVersion', 'runtimes', d.inventory->'runtimes', 'accelerators', d.inventory->'accelerators')::text`;

/** What COMPATIBILITY_KEY_SQL projects, as parsed JSON (anything may be missing or malformed). */
export interface CompatibilityProjection {
  hardwareClass?: unknown;
  agentVersion?: unknown;
  runtimes?: unknown;
  accelerators?: unknown;
}

/** A projection as the protocol's compatibility rule takes it; malformed parts count as absent. */
export function capabilitiesOf(projection: CompatibilityProjection): DeviceCapabilities {
  return {
    hardwareClass: typeof projection.hardwareClass === 'string' ? projection.hardwareClass : '',
    agentVersion: typeof projection.agentVersion === 'string' ? projection.agentVersion : '0.0.0',
    runtimes: isStringRecord(projection.runtimes) ? projection.runtimes : {},
    accelerators: Array.isArray(projection.accelerators) ? projection.accelerators.filter((a): a is string => typeof a === 'string') : [],
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}
