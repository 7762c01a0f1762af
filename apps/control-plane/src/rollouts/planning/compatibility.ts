import { type ArtifactRef, checkCompatibility } from '@fleetline/protocol';

/** The part of a device's inventory compatibility depends on (what the SQL projects with COMPATIBILITY_KEY_SQL). */
export interface CompatibilityProjection {
  hardwareClass?: unknown;
  agentVersion?: unknown;
  runtimes?: unknown;
  accelerators?: unknown;
}

/**
 * Compatibility is decided once per DISTINCT projection of the inventory (a fleet has few
 * hardware/runtime/agent combinations), so a million devices cost one grouped scan. The key
 * is jsonb text, which is canonical for equal values.
 */
export const COMPATIBILITY_KEY_SQL = `jsonb_build_object('hardwareClass', d.inventory->'hardwareClass', 'agentVersion', d.inventory->'agentVersion', 'runtimes', d.inventory->'runtimes', 'accelerators', d.inventory->'accelerators')::text`;

/**
 * A device fits a version when at least one of its artifacts fits it (artifacts may target
 * different runtimes or hardware). Returns the reason of the first artifact otherwise.
 */
export function incompatibilityReason(artifacts: readonly ArtifactRef[], projection: CompatibilityProjection): string | undefined {
  const inventory = {
    hardwareClass: typeof projection.hardwareClass === 'string' ? projection.hardwareClass : '',
    agentVersion: typeof projection.agentVersion === 'string' ? projection.agentVersion : '0.0.0',
    runtimes: isStringRecord(projection.runtimes) ? projection.runtimes : {},
    accelerators: Array.isArray(projection.accelerators) ? projection.accelerators.filter((a): a is string => typeof a === 'string') : [],
  };
  const reasons: string[] = [];
  for (const artifact of artifacts) {
    const result = checkCompatibility(artifact.compatibility ?? {}, artifact.runtime, inventory);
    if (result.compatible) return undefined;
    reasons.push(`${result.code}: ${result.reason}`);
  }
  return reasons[0] ?? 'the version has no artifact';
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}
