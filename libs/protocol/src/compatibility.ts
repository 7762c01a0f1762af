import semver from 'semver';
import type { ArtifactRef, Compatibility } from './messages.js';
import type { FailureCode } from './update-state.js';

/**
 * The one compatibility rule of Fleetline. The control plane uses it to choose each device's build
 * and to skip devices no build fits before a rollout sends anything; the agent uses it to pick (or
 * re-check) its build and to refuse an assignment before it downloads anything. Nothing else
 * decides compatibility.
 */

/** The build of artifacts that name none (versions uploaded before variants existed). */
export const DEFAULT_VARIANT = 'default';

/** What a device offers, as far as compatibility goes: the compatibility part of its inventory. */
export interface DeviceCapabilities {
  hardwareClass: string;
  agentVersion: string;
  /** Runtime name -> version of the runtimes the device has. */
  runtimes: Readonly<Record<string, string>>;
  accelerators: readonly string[];
}

export type IncompatibilityCode = Extract<FailureCode, 'incompatible-hardware' | 'incompatible-runtime' | 'incompatible-agent'>;

export type CompatibilityResult = { compatible: true } | { compatible: false; code: IncompatibilityCode; reason: string };

/**
 * Whether one artifact's constraints fit a device. `runtime` is the artifact's runtime name.
 * Ranges use node-semver with includePrerelease, so "1.2.0-rc.1" agents are not silently refused;
 * a range that is not valid semver fits nothing.
 */
export function checkCompatibility(constraints: Compatibility, runtime: string, device: DeviceCapabilities): CompatibilityResult {
  const classes = constraints.hardwareClasses ?? [];
  if (classes.length > 0 && !classes.includes(device.hardwareClass)) {
    return { compatible: false, code: 'incompatible-hardware', reason: `hardware class ${device.hardwareClass} not in [${classes.join(', ')}]` };
  }
  // The protocol has no separate accelerator code: a missing accelerator is a hardware mismatch.
  const missing = (constraints.accelerators ?? []).filter((a) => !device.accelerators.includes(a));
  if (missing.length > 0) return { compatible: false, code: 'incompatible-hardware', reason: `needs ${missing.join(', ')}` };
  const runtimeVersion = device.runtimes[runtime];
  if (runtimeVersion === undefined) return { compatible: false, code: 'incompatible-runtime', reason: `runtime ${runtime} not available` };
  if (constraints.runtimeRange !== undefined) {
    if (!semver.validRange(constraints.runtimeRange))
      return { compatible: false, code: 'incompatible-runtime', reason: `invalid runtime range ${constraints.runtimeRange}` };
    if (!satisfies(runtimeVersion, constraints.runtimeRange)) {
      return { compatible: false, code: 'incompatible-runtime', reason: `runtime ${runtime} ${runtimeVersion} does not satisfy ${constraints.runtimeRange}` };
    }
  }
  if (constraints.agentRange !== undefined) {
    if (!semver.validRange(constraints.agentRange))
      return { compatible: false, code: 'incompatible-agent', reason: `invalid agent range ${constraints.agentRange}` };
    if (!satisfies(device.agentVersion, constraints.agentRange)) {
      return { compatible: false, code: 'incompatible-agent', reason: `agent ${device.agentVersion} does not satisfy ${constraints.agentRange}` };
    }
  }
  return { compatible: true };
}

/** The build an artifact belongs to. */
export function variantOf(artifact: Pick<ArtifactRef, 'variant'>): string {
  return artifact.variant ?? DEFAULT_VARIANT;
}

/** One build of a version: its files, in order (the first is the one the runtime loads). */
export interface Build {
  variant: string;
  /** Position in the version's declared order: 0 is preferred over 1, and so on. */
  rank: number;
  artifacts: ArtifactRef[];
}

/**
 * The builds of a version, in the order the version declares them: the order in which each build's
 * first file appears in `artifacts` (the control plane sends artifacts sorted by the upload's
 * `variants` order).
 */
export function buildsOf(artifacts: readonly ArtifactRef[]): Build[] {
  const builds = new Map<string, Build>();
  for (const artifact of artifacts) {
    const name = variantOf(artifact);
    let build = builds.get(name);
    if (!build) {
      build = { variant: name, rank: builds.size, artifacts: [] };
      builds.set(name, build);
    }
    build.artifacts.push(artifact);
  }
  return [...builds.values()];
}

/** A build fits a device when every one of its files fits. */
export function checkBuild(build: Pick<Build, 'artifacts'>, device: DeviceCapabilities): CompatibilityResult {
  for (const artifact of build.artifacts) {
    const result = checkCompatibility(artifact.compatibility ?? {}, artifact.runtime, device);
    if (!result.compatible) return result;
  }
  return { compatible: true };
}

export interface RejectedBuild {
  variant: string;
  code: IncompatibilityCode;
  reason: string;
}

export type VariantSelection =
  { ok: true; variant: string; rank: number; artifacts: ArtifactRef[] } | { ok: false; code: FailureCode; reason: string; rejected: RejectedBuild[] };

/**
 * The best build of a version for a device: the first build, in the version's declared order,
 * that fits it; or why none does. `only` restricts the choice to one named build (the agent
 * re-checks exactly the build the control plane chose). Pure.
 */
export function selectVariant(artifacts: readonly ArtifactRef[], device: DeviceCapabilities, only?: string): VariantSelection {
  const all = buildsOf(artifacts);
  const builds = only === undefined ? all : all.filter((b) => b.variant === only);
  if (builds.length === 0) {
    const reason = only === undefined ? 'the version has no build' : `the assignment has no build ${only}`;
    return { ok: false, code: 'internal', reason, rejected: [] };
  }
  const rejected: RejectedBuild[] = [];
  for (const build of builds) {
    const result = checkBuild(build, device);
    if (result.compatible) return { ok: true, variant: build.variant, rank: build.rank, artifacts: build.artifacts };
    rejected.push({ variant: build.variant, code: result.code, reason: result.reason });
  }
  // One build: its reason says it all. Several: each build with its reason, in order.
  const detail = rejected.length === 1 ? rejected[0]!.reason : rejected.map((r) => `${r.variant} (${r.reason})`).join('; ');
  return { ok: false, code: rejected[0]!.code, reason: `no build fits: ${detail}`, rejected };
}

function satisfies(version: string, range: string): boolean {
  const coerced = semver.valid(version) ?? semver.coerce(version)?.version;
  return coerced !== undefined && coerced !== null && semver.satisfies(coerced, range, { includePrerelease: true });
}
