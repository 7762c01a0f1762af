import { describe, expect, it } from '@jest/globals';
import { loadMetricsConfig } from './metrics.config.js';

describe('loadMetricsConfig', () => {
  it('defaults to a public endpoint and a 5 s fleet cache', () => {
    expect(loadMetricsConfig({})).toEqual({ requireKey: false, fleetCacheMs: 5000 });
  });
  it('reads METRICS_REQUIRE_KEY and METRICS_FLEET_CACHE_SECONDS', () => {
    expect(loadMetricsConfig({ METRICS_REQUIRE_KEY: 'true', METRICS_FLEET_CACHE_SECONDS: '0.5' })).toEqual({ requireKey: true, fleetCacheMs: 500 });
    expect(loadMetricsConfig({ METRICS_REQUIRE_KEY: 'FALSE' }).requireKey).toBe(false);
  });
  it('refuses values that are neither', () => {
    expect(() => loadMetricsConfig({ METRICS_REQUIRE_KEY: 'maybe' })).toThrow('METRICS_REQUIRE_KEY');
    expect(() => loadMetricsConfig({ METRICS_FLEET_CACHE_SECONDS: '-1' })).toThrow('METRICS_FLEET_CACHE_SECONDS');
  });
});
