import semver from 'semver';
import type { SqlParams } from '../../infra/database/sql-params.js';
import type { TargetSelector } from '../rollout.types.js';

/**
 * Values (agent versions, runtime versions) that satisfy a semver range. Ranges cannot be
 * evaluated in SQL, so the repository reads the DISTINCT values present in the fleet (a
 * handful), filters them here and matches with `= ANY($n)`.
 */
export function versionsSatisfying(values: readonly string[], range: string): string[] {
  return values.filter((v) => {
    const coerced = semver.valid(v) ?? semver.coerce(v)?.version;
    return coerced !== undefined && coerced !== null && semver.satisfies(coerced, range, { includePrerelease: true });
  });
}

export function isValidRange(range: string): boolean {
  return semver.validRange(range) !== null;
}

/** Pre-computed, range-resolved parts of a selector (see versionsSatisfying). */
export interface ResolvedRanges {
  agentVersions?: string[];
  runtimeVersions?: string[];
  /** Name of a temp table holding the explicit ids (device_id). */
  explicitIdsTable?: string;
}

/**
 * WHERE clause (over `devices d`) of a target selector. Every criterion is an indexed or
 * set-based predicate; none of them runs per device from the application.
 */
export function targetWhereSql(selector: TargetSelector, rolloutModel: string, ranges: ResolvedRanges, params: SqlParams): string {
  const clauses = ['d.decommissioned_at IS NULL'];
  if (selector.tags && Object.keys(selector.tags).length > 0) clauses.push(`d.tags @> ${params.add(JSON.stringify(selector.tags))}::jsonb`);
  if (selector.current) {
    const model = params.add(selector.current.model ?? rolloutModel);
    if (selector.current.versions && selector.current.versions.length > 0) {
      clauses.push(
        `EXISTS (SELECT 1 FROM device_models cm WHERE cm.device_id = d.id AND cm.model = ${model} AND cm.active_version = ANY(${params.add(selector.current.versions)}::text[]))`,
      );
    }
    if (selector.current.notInstalled) {
      clauses.push(`NOT EXISTS (SELECT 1 FROM device_models cm WHERE cm.device_id = d.id AND cm.model = ${model} AND cm.active_version IS NOT NULL)`);
    }
  }
  if (selector.presence?.online !== undefined) clauses.push(`d.online = ${params.add(selector.presence.online)}`);
  if (selector.presence?.seenWithinSeconds !== undefined) {
    clauses.push(`d.last_seen_at >= now() - make_interval(secs => ${params.add(selector.presence.seenWithinSeconds)})`);
  }
  const inv = selector.inventory;
  if (inv?.hardwareClasses && inv.hardwareClasses.length > 0) clauses.push(`d.hardware_class = ANY(${params.add(inv.hardwareClasses)}::text[])`);
  if (inv?.runtime) {
    const name = params.add(inv.runtime.name);
    if (inv.runtime.range !== undefined) clauses.push(`(d.inventory->'runtimes'->>${name}) = ANY(${params.add(ranges.runtimeVersions ?? [])}::text[])`);
    else clauses.push(`jsonb_exists(d.inventory->'runtimes', ${name})`);
  }
  if (inv?.agentVersion !== undefined) clauses.push(`d.agent_version = ANY(${params.add(ranges.agentVersions ?? [])}::text[])`);
  if (ranges.explicitIdsTable) clauses.push(`d.id IN (SELECT device_id FROM ${ranges.explicitIdsTable})`);
  return clauses.join(' AND ');
}
