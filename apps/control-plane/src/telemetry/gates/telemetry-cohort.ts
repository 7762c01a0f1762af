/**
 * Cohort labels of telemetry samples. A sample is labelled at ingest with the device's rollout
 * membership for the sample's model, so canary and baseline numbers come from rollups without
 * joining a million device rows at query time:
 *   - `rollout:<rolloutId>:w<wave>`: the device is in wave <wave> of an active rollout of the model;
 *   - `fleet`: every other device running the version it reports;
 *   - `fleet-inactive`: every other device (its telemetry names a version it does not run).
 * The label is frozen at ingest: a sample keeps the cohort the device had when it was received.
 */
export const FLEET_COHORT = 'fleet';
/**
 * A device outside every active rollout's waves reporting a version that is not its active one
 * (device_models.active_version, from its update reports): kept, but never baseline evidence.
 */
export const INACTIVE_COHORT = 'fleet-inactive';

export function rolloutCohort(rolloutId: string, wave: number): string {
  return `rollout:${rolloutId}:w${wave}`;
}

/** Prefix shared by every cohort of one rollout (for LIKE queries). */
export function rolloutCohortPrefix(rolloutId: string): string {
  return `rollout:${rolloutId}:`;
}

export interface ParsedCohort {
  kind: 'rollout' | 'fleet' | 'inactive';
  rolloutId?: string;
  wave?: number;
}

export function parseCohort(label: string): ParsedCohort | undefined {
  if (label === FLEET_COHORT) return { kind: 'fleet' };
  if (label === INACTIVE_COHORT) return { kind: 'inactive' };
  const match = /^rollout:([^:]+):w(\d+)$/.exec(label);
  if (!match) return undefined;
  return { kind: 'rollout', rolloutId: match[1]!, wave: Number(match[2]) };
}

/** Candidate cohort of a gate evaluation: the given waves of the rollout (deduplicated, sorted). */
export function candidateCohorts(rolloutId: string, waves: readonly number[]): string[] {
  return [...new Set(waves)].sort((a, b) => a - b).map((w) => rolloutCohort(rolloutId, w));
}

/**
 * Pure form of the ingest labelling rule (the SQL in the ingest repository applies the same rule
 * set-based): membership in an active rollout of the sample's model wins; otherwise `fleet` when
 * the device runs the version the sample is about (its active version), else `fleet-inactive`.
 * When a device is (wrongly) in two active rollouts of one model, the most recently created wins (as in the SQL).
 * Without `run` (the version check left out) the fallback is `fleet`.
 */
export function cohortFor(
  model: string,
  memberships: readonly { rolloutId: string; model: string; wave: number; active: boolean; createdAt: Date }[],
  run?: { version: string; activeVersion: string | null | undefined },
): string {
  const active = memberships.filter((m) => m.active && m.model === model).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const chosen = active[0];
  if (chosen) return rolloutCohort(chosen.rolloutId, chosen.wave);
  return run === undefined || run.activeVersion === run.version ? FLEET_COHORT : INACTIVE_COHORT;
}
