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

  it('keeps the TUF keys online by default and takes TUF_KEYS=offline; anything else names the variable', () => {
    expect(loadConfig({}).tufKeys).toBe('online');
    expect(loadConfig({ TUF_KEYS: 'offline' }).tufKeys).toBe('offline');
    expect(() => loadConfig({ TUF_KEYS: 'hsm' })).toThrow(/TUF_KEYS: must be online or offline/);
  });

  it('spreads TUF targets over 256 hash bins by default and takes any power of two from 2 to 65536', () => {
    expect(loadConfig({}).tufBinCount).toBe(256);
    expect(loadConfig({ TUF_BIN_COUNT: '4096' }).tufBinCount).toBe(4096);
    for (const bad of ['1000', '1', '0', '131072', 'many']) {
      expect(() => loadConfig({ TUF_BIN_COUNT: bad })).toThrow(/TUF_BIN_COUNT: must be a power of two between 2 and 65536/);
    }
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

  it('refuses TLS-only settings without TLS, and half a key pair', () => {
    expect(() => loadConfig({ MQTT_PLAIN: 'false' })).toThrow(/MQTT_PLAIN: .*TLS_CERT_FILE/);
    expect(() => loadConfig({ MQTT_WSS_PORT: '8884' })).toThrow(/MQTT_WSS_PORT/);
    expect(() => loadConfig({ TLS_CA_FILE: '/etc/ca.pem' })).toThrow(/TLS_CA_FILE/);
    expect(() => loadConfig({ MQTT_TLS_CLIENT_CA_FILE: '/etc/device-ca.pem' })).toThrow(/MQTT_TLS_CLIENT_CA_FILE: client certificates need TLS/);
    expect(() => loadConfig({ TLS_KEY_FILE: '/etc/key.pem' })).toThrow(/TLS_CERT_FILE: TLS needs both/);
    expect(() => loadConfig({ MQTT_PLAIN: 'maybe' })).toThrow(/MQTT_PLAIN: must be true or false/);
  });

  it('keeps the rate limits in Redis when REDIS_URL is set, in memory otherwise', () => {
    expect(loadConfig({ REDIS_URL: 'redis://redis:6379' }).rateLimits.shared).toEqual({ redisUrl: 'redis://redis:6379' });
    expect(loadConfig({}).rateLimits.shared).toBeUndefined();
  });

  it('fails at start-up on a TLS file that cannot be read, naming the variable', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: '/nonexistent/fleetline.pem', TLS_KEY_FILE: '/nonexistent/fleetline.key' })).toThrow(
      /TLS_CERT_FILE: cannot read \/nonexistent\/fleetline\.pem/,
    );
  });

  it('keeps TLS off and the plain MQTT listener on by default', () => {
    const config = loadConfig({});
    expect(config.tls).toBeUndefined();
    expect(config.mqtt).toMatchObject({ kind: 'embedded', plain: true });
    expect(config.mqtt).not.toHaveProperty('tlsPort');
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
