import { Injectable } from '@nestjs/common';
import { FLEET_COHORT, INACTIVE_COHORT, parseCohort, rolloutCohortPrefix } from './gates/telemetry-cohort.js';
import { TelemetryException, TelemetryErrorCode } from './telemetry.exception.js';
import { type ReferenceDistribution, type TimeWindow, TelemetryQueryRepository } from './telemetry-query.repository.js';
import { mergeAll, psiAgainst, summarize, type TelemetryAggregate, type TelemetryStats } from './gates/telemetry-stats.js';

/** Longest window one query may cover, and most series points it may return. */
export const MAX_WINDOW_DAYS = 31;
export const MAX_SERIES_POINTS = 5_000;
const HOUR_MS = 3_600_000;

export interface SeriesPoint extends Omit<TelemetryStats, 'latency'> {
  start: string;
  latency: Omit<TelemetryStats['latency'], 'buckets'>;
}

export interface PsiView {
  /** PSI against the version's own reference (uploaded, else captured from its first production window). */
  value: number | null;
  reference: 'uploaded' | 'captured' | null;
}

export interface VersionTelemetry {
  model: string;
  version: string;
  cohort: string | null;
  /** The build the numbers are filtered to (null: all builds). */
  variant: string | null;
  from: string;
  to: string;
  bucketSeconds: number;
  totals: TelemetryStats;
  psi: PsiView;
  series: SeriesPoint[];
  /** The same totals per build of the version (variant null: samples from agents that named none). */
  variants: { variant: string | null; stats: TelemetryStats }[];
}

export interface RolloutCohortTelemetry {
  cohort: string;
  role: 'candidate' | 'baseline';
  wave: number | null;
  version: string;
  stats: TelemetryStats;
  psi: {
    /** Against the baseline version's reference distribution (the meaningful drift of a canary). */
    vsBaselineReference: number | null;
    /** Against this version's own reference, when there is one. */
    vsOwnReference: number | null;
  };
}

/** Parses and checks a query window; `bucketSeconds` (when given) must be a multiple of 60 and keep the series bounded. */
export function resolveWindow(from: string | undefined, to: string | undefined, bucketSeconds?: number, now = new Date()): TimeWindow {
  const end = to ? new Date(to) : now;
  const start = from ? new Date(from) : new Date(end.getTime() - HOUR_MS);
  if (Number.isNaN(end.getTime()) || Number.isNaN(start.getTime()))
    throw new TelemetryException(TelemetryErrorCode.InvalidWindow, 'from and to must be timestamps');
  if (start.getTime() >= end.getTime()) throw new TelemetryException(TelemetryErrorCode.InvalidWindow, 'from must be before to');
  if (end.getTime() - start.getTime() > MAX_WINDOW_DAYS * 24 * HOUR_MS) {
    throw new TelemetryException(TelemetryErrorCode.InvalidWindow, `the window may cover at most ${MAX_WINDOW_DAYS} days`);
  }
  if (bucketSeconds !== undefined) {
    if (bucketSeconds % 60 !== 0)
      throw new TelemetryException(TelemetryErrorCode.InvalidWindow, 'bucket must be a multiple of 60 seconds (rollups are per minute)');
    const points = Math.ceil((end.getTime() - start.getTime()) / (bucketSeconds * 1000));
    if (points > MAX_SERIES_POINTS) {
      throw new TelemetryException(
        TelemetryErrorCode.TooManyPoints,
        `the series would have ${points} points; use a larger bucket (at most ${MAX_SERIES_POINTS} points)`,
        {
          points,
        },
      );
    }
  }
  return { from: start, to: end };
}

function seriesPoint(start: Date, aggregate: TelemetryAggregate): SeriesPoint {
  const stats = summarize(aggregate);
  const { buckets: _buckets, ...latency } = stats.latency;
  return { ...stats, start: start.toISOString(), latency };
}

function psiView(reference: ReferenceDistribution | undefined, predictions: Record<string, number>): PsiView {
  return { value: psiAgainst(reference?.distribution, predictions), reference: reference?.source ?? null };
}

@Injectable()
export class TelemetryQueryService {
  constructor(private readonly repository: TelemetryQueryRepository) {}

  async version(model: string, version: string, window: TimeWindow, bucketSeconds: number, cohort?: string, variant?: string): Promise<VersionTelemetry> {
    if (cohort !== undefined && !parseCohort(cohort)) {
      throw new TelemetryException(TelemetryErrorCode.InvalidWindow, `cohort must be "${FLEET_COHORT}", "${INACTIVE_COHORT}" or "rollout:<rolloutId>:w<wave>"`);
    }
    const [buckets, references, perVariant] = await Promise.all([
      this.repository.versionSeries(model, version, window, bucketSeconds, cohort, variant),
      this.repository.references(model, [version]),
      this.repository.perVariant(model, version, window, cohort, variant),
    ]);
    const totals = mergeAll(buckets.map((b) => b.aggregate));
    return {
      model,
      version,
      cohort: cohort ?? null,
      variant: variant ?? null,
      from: window.from.toISOString(),
      to: window.to.toISOString(),
      bucketSeconds,
      totals: summarize(totals),
      psi: psiView(references.get(version), totals.predictions),
      series: buckets.map((b) => seriesPoint(b.start, b.aggregate)),
      variants: perVariant.map((v) => ({ variant: v.variant === '' ? null : v.variant, stats: summarize(v.aggregate) })),
    };
  }

  async model(
    model: string,
    window: TimeWindow,
  ): Promise<{ model: string; from: string; to: string; versions: { version: string; stats: TelemetryStats; psi: PsiView }[] }> {
    const rows = await this.repository.perVersion(model, window);
    const references = await this.repository.references(
      model,
      rows.map((r) => r.version),
    );
    return {
      model,
      from: window.from.toISOString(),
      to: window.to.toISOString(),
      versions: rows.map((r) => ({ version: r.version, stats: summarize(r.aggregate), psi: psiView(references.get(r.version), r.aggregate.predictions) })),
    };
  }

  async rollout(
    rolloutId: string,
    window: TimeWindow,
  ): Promise<{
    rolloutId: string;
    model: string;
    version: string;
    baselineVersion: string | null;
    baselineReference: 'uploaded' | 'captured' | null;
    from: string;
    to: string;
    cohorts: RolloutCohortTelemetry[];
  }> {
    const rollout = await this.findRollout(rolloutId);
    const rows = await this.repository.perRolloutCohort(rollout.model, rolloutCohortPrefix(rollout.id), window);
    const versions = new Set(rows.map((r) => r.version));
    if (rollout.baselineVersion) versions.add(rollout.baselineVersion);
    const references = await this.repository.references(rollout.model, [...versions]);
    const baselineReference = rollout.baselineVersion ? references.get(rollout.baselineVersion) : undefined;
    return {
      rolloutId: rollout.id,
      model: rollout.model,
      version: rollout.version,
      baselineVersion: rollout.baselineVersion,
      baselineReference: baselineReference?.source ?? null,
      from: window.from.toISOString(),
      to: window.to.toISOString(),
      cohorts: rows.map((r) => {
        const parsed = parseCohort(r.cohort);
        return {
          cohort: r.cohort,
          role: parsed?.kind === 'rollout' ? 'candidate' : 'baseline',
          wave: parsed?.wave ?? null,
          version: r.version,
          stats: summarize(r.aggregate),
          psi: {
            vsBaselineReference: psiAgainst(baselineReference?.distribution, r.aggregate.predictions),
            vsOwnReference: psiAgainst(references.get(r.version)?.distribution, r.aggregate.predictions),
          },
        };
      }),
    };
  }

  async device(
    deviceId: string,
    window: TimeWindow,
    bucketSeconds: number,
    model?: string,
  ): Promise<{
    deviceId: string;
    from: string;
    to: string;
    bucketSeconds: number;
    models: { model: string; version: string; totals: TelemetryStats; series: SeriesPoint[] }[];
  }> {
    const rows = await this.repository.deviceSeries(deviceId, window, bucketSeconds, model);
    const groups = new Map<string, { model: string; version: string; buckets: { start: Date; aggregate: TelemetryAggregate }[] }>();
    for (const r of rows) {
      const key = `${r.model}\u0000${r.version}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { model: r.model, version: r.version, buckets: [] }));
      g.buckets.push({ start: r.start, aggregate: r.aggregate });
    }
    return {
      deviceId,
      from: window.from.toISOString(),
      to: window.to.toISOString(),
      bucketSeconds,
      models: [...groups.values()].map((g) => ({
        model: g.model,
        version: g.version,
        totals: summarize(mergeAll(g.buckets.map((b) => b.aggregate))),
        series: g.buckets.map((b) => seriesPoint(b.start, b.aggregate)),
      })),
    };
  }

  private async findRollout(rolloutId: string): Promise<NonNullable<Awaited<ReturnType<TelemetryQueryRepository['rollout']>>>> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(rolloutId)) {
      throw new TelemetryException(TelemetryErrorCode.RolloutNotFound, `rollout ${rolloutId} not found`);
    }
    let rollout;
    try {
      rollout = await this.repository.rollout(rolloutId);
    } catch (err) {
      // 42P01: undefined_table (rollouts feature not installed).
      if ((err as { driverError?: { code?: string } }).driverError?.code === '42P01') {
        throw new TelemetryException(TelemetryErrorCode.RolloutsUnavailable, 'rollouts are not available');
      }
      throw err;
    }
    if (!rollout) throw new TelemetryException(TelemetryErrorCode.RolloutNotFound, `rollout ${rolloutId} not found`);
    return rollout;
  }
}
