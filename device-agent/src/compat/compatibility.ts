import semver from 'semver';
import type { ArtifactRef, FailureCode } from '@fleetline/protocol';

/** What this device offers, as far as compatibility goes. */
export interface DeviceCapabilities {
  hardwareClass: string;
  accelerators: readonly string[];
  agentVersion: string;
  /** Runtime name -> semver version of the runtimes registered on this device. */
  runtimes: Readonly<Record<string, string>>;
}

export type CompatibilityResult =
  { ok: true } | { ok: false; code: Extract<FailureCode, 'incompatible-hardware' | 'incompatible-runtime' | 'incompatible-agent'>; message: string };

/**
 * Checks one artifact against the device BEFORE anything is downloaded, so an incompatible
 * assignment costs no bandwidth and leaves the device untouched. Pure.
 * Ranges use node-semver with includePrerelease so "1.2.0-rc.1" agents are not silently refused.
 */
export function checkArtifactCompatibility(artifact: ArtifactRef, device: DeviceCapabilities): CompatibilityResult {
  const c = artifact.compatibility ?? {};
  if (c.hardwareClasses && c.hardwareClasses.length > 0 && !c.hardwareClasses.includes(device.hardwareClass)) {
    return { ok: false, code: 'incompatible-hardware', message: `hardware class ${device.hardwareClass} not in [${c.hardwareClasses.join(', ')}]` };
  }
  if (c.accelerators && c.accelerators.length > 0) {
    const missing = c.accelerators.filter((a) => !device.accelerators.includes(a));
    // The protocol has no separate accelerator code: a missing accelerator is a hardware mismatch.
    if (missing.length > 0) return { ok: false, code: 'incompatible-hardware', message: `missing accelerator(s): ${missing.join(', ')}` };
  }
  const runtimeVersion = device.runtimes[artifact.runtime];
  if (runtimeVersion === undefined) {
    return { ok: false, code: 'incompatible-runtime', message: `runtime ${artifact.runtime} is not available on this device` };
  }
  if (c.runtimeRange) {
    if (!semver.validRange(c.runtimeRange)) return { ok: false, code: 'incompatible-runtime', message: `invalid runtime range ${c.runtimeRange}` };
    if (!semver.satisfies(runtimeVersion, c.runtimeRange, { includePrerelease: true })) {
      return { ok: false, code: 'incompatible-runtime', message: `runtime ${artifact.runtime} ${runtimeVersion} does not satisfy ${c.runtimeRange}` };
    }
  }
  if (c.agentRange) {
    if (!semver.validRange(c.agentRange)) return { ok: false, code: 'incompatible-agent', message: `invalid agent range ${c.agentRange}` };
    if (!semver.satisfies(device.agentVersion, c.agentRange, { includePrerelease: true })) {
      return { ok: false, code: 'incompatible-agent', message: `agent ${device.agentVersion} does not satisfy ${c.agentRange}` };
    }
  }
  return { ok: true };
}

/** All artifacts of an assignment must fit; the first mismatch is reported. */
export function checkCompatibility(artifacts: readonly ArtifactRef[], device: DeviceCapabilities): CompatibilityResult {
  for (const a of artifacts) {
    const r = checkArtifactCompatibility(a, device);
    if (!r.ok) return r;
  }
  return { ok: true };
}
