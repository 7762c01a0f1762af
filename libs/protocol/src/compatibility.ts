import semver from 'semver';
import type { Compatibility, Inventory } from './messages.js';
import type { FailureCode } from './update-state.js';

export type CompatibilityResult = { compatible: true } | { compatible: false; code: FailureCode; reason: string };

/**
 * Whether an artifact's constraints fit a device. One implementation for both sides: the control
 * plane uses it to skip devices before a rollout sends anything, the agent to refuse an
 * assignment before it downloads anything. `runtime` is the artifact's runtime name.
 */
export function checkCompatibility(
  constraints: Compatibility,
  runtime: string,
  inventory: Pick<Inventory, 'hardwareClass' | 'agentVersion' | 'runtimes' | 'accelerators'>,
): CompatibilityResult {
  const classes = constraints.hardwareClasses ?? [];
  if (classes.length > 0 && !classes.includes(inventory.hardwareClass)) {
    return { compatible: false, code: 'incompatible-hardware', reason: `hardware class ${inventory.hardwareClass} not in [${classes.join(', ')}]` };
  }
  const needed = constraints.accelerators ?? [];
  const missing = needed.filter((a) => !(inventory.accelerators ?? []).includes(a));
  if (missing.length > 0) {
    return { compatible: false, code: 'incompatible-hardware', reason: `missing accelerator(s): ${missing.join(', ')}` };
  }
  const runtimeVersion = inventory.runtimes?.[runtime];
  if (runtimeVersion === undefined) {
    return { compatible: false, code: 'incompatible-runtime', reason: `runtime ${runtime} not available on the device` };
  }
  if (constraints.runtimeRange && !satisfies(runtimeVersion, constraints.runtimeRange)) {
    return { compatible: false, code: 'incompatible-runtime', reason: `runtime ${runtime} ${runtimeVersion} does not satisfy ${constraints.runtimeRange}` };
  }
  if (constraints.agentRange && !satisfies(inventory.agentVersion, constraints.agentRange)) {
    return { compatible: false, code: 'incompatible-agent', reason: `agent ${inventory.agentVersion} does not satisfy ${constraints.agentRange}` };
  }
  return { compatible: true };
}

function satisfies(version: string, range: string): boolean {
  const coerced = semver.valid(version) ?? semver.coerce(version)?.version;
  return coerced !== undefined && coerced !== null && semver.satisfies(coerced, range, { includePrerelease: true });
}
