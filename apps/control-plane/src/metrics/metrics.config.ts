/** Settings of the metrics feature, read from the environment once at start-up. */
export interface MetricsConfig {
  /** When true, GET /metrics needs an API key (any role, viewer included). Default: public, like most exporters. */
  requireKey: boolean;
  /** How long the fleet gauges (database GROUP BY queries) are reused between scrapes. */
  fleetCacheMs: number;
}

export const METRICS_CONFIG = Symbol('METRICS_CONFIG');

const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no', '']);

/**
 * METRICS_REQUIRE_KEY=true|false (default false) and METRICS_FLEET_CACHE_SECONDS (default 5).
 * A value that is neither stops start-up, like every other configuration mistake.
 */
export function loadMetricsConfig(env: NodeJS.ProcessEnv = process.env): MetricsConfig {
  const rawRequire = (env['METRICS_REQUIRE_KEY'] ?? '').trim().toLowerCase();
  if (!TRUE.has(rawRequire) && !FALSE.has(rawRequire)) {
    throw new Error(`METRICS_REQUIRE_KEY: must be true or false (got "${env['METRICS_REQUIRE_KEY']}")`);
  }
  const rawCache = env['METRICS_FLEET_CACHE_SECONDS'];
  const cacheSeconds = rawCache === undefined || rawCache === '' ? 5 : Number(rawCache);
  if (!Number.isFinite(cacheSeconds) || cacheSeconds < 0 || cacheSeconds > 3600) {
    throw new Error(`METRICS_FLEET_CACHE_SECONDS: must be a number of seconds 0-3600 (got "${rawCache}")`);
  }
  return { requireKey: TRUE.has(rawRequire), fleetCacheMs: Math.round(cacheSeconds * 1000) };
}
