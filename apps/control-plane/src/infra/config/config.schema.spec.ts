import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.schema.js';

describe('loadConfig', () => {
  it('defaults to the embedded broker and PGlite under the data dir', () => {
    const config = loadConfig({ DATA_DIR: '/var/lib/fleetline' });
    expect(config.http.port).toBe(3000);
    expect(config.mqtt).toMatchObject({ kind: 'embedded', port: 1883 });
    expect(config.database).toEqual({ kind: 'pglite', dir: '/var/lib/fleetline/pglite' });
  });

  it('switches to PostgreSQL and an external broker when their URLs are set', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/fleet', MQTT_URL: 'mqtt://broker:1883', MQTT_SHARED_GROUP: 'cp' });
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://u@db:5432/fleet', poolSize: 20 });
    expect(config.mqtt).toMatchObject({ kind: 'external', url: 'mqtt://broker:1883', sharedGroup: 'cp' });
  });

  it('names every bad variable', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', MQTT_PORT: '70000', DATABASE_URL: 'mysql://x', FLEET_ADMIN_KEY: 'short' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of ['PORT', 'MQTT_PORT', 'DATABASE_URL', 'FLEET_ADMIN_KEY']) expect(message).toContain(name);
  });

  it('has safe API and enrollment defaults, and refuses bad values of their settings', () => {
    const config = loadConfig({});
    expect(config.httpLimits).toEqual({ jsonBytes: 1024 * 1024, requestTimeoutMs: 60_000, trustProxy: undefined });
    expect(config.rateLimits.enroll).toEqual({ perSecond: 5, burst: 100 });
    expect(config.enrollmentTokenTtlSeconds).toBe(7 * 86_400);
    expect(config.artifactAccess).toBe('assigned');
    expect(() => loadConfig({ ARTIFACT_ACCESS: 'everyone' })).toThrow(/ARTIFACT_ACCESS/);
    expect(() => loadConfig({ HTTP_JSON_LIMIT_BYTES: '10' })).toThrow(/HTTP_JSON_LIMIT_BYTES/);
    expect(() => loadConfig({ ENROLL_RATE_PER_SECOND: '-1' })).toThrow(/ENROLL_RATE_PER_SECOND/);
  });
});
