import { describe, expect, it } from '@jest/globals';
import { acceptRequestId, effectiveLevel, pinoLevel, redactUrl, resolveLogFormat } from './log-format.js';

describe('log format', () => {
  it('reads LOG_FORMAT first, then NODE_ENV', () => {
    expect(resolveLogFormat(undefined, 'production')).toBe('json');
    expect(resolveLogFormat(undefined, undefined)).toBe('pretty');
    expect(resolveLogFormat('json', 'development')).toBe('json');
    expect(resolveLogFormat('pretty', 'production')).toBe('pretty');
  });

  it('maps Nest level names onto pino', () => {
    expect(pinoLevel('log')).toBe('info');
    expect(pinoLevel('verbose')).toBe('trace');
    expect(pinoLevel('warn')).toBe('warn');
  });

  it("puts Nest's module and route listing at debug, and nothing else", () => {
    expect(effectiveLevel('info', 'RouterExplorer')).toBe('debug');
    expect(effectiveLevel('info', 'InstanceLoader')).toBe('debug');
    expect(effectiveLevel('warn', 'RouterExplorer')).toBe('warn');
    expect(effectiveLevel('info', 'Tls')).toBe('info');
    expect(effectiveLevel('info', undefined)).toBe('info');
  });

  it('keeps a plain incoming request id and refuses anything else', () => {
    expect(acceptRequestId('abc-123')).toBe('abc-123');
    expect(acceptRequestId(['first', 'second'])).toBe('first');
    expect(acceptRequestId('has space')).toBeUndefined();
    expect(acceptRequestId('line\nbreak')).toBeUndefined();
    expect(acceptRequestId('x'.repeat(129))).toBeUndefined();
    expect(acceptRequestId(undefined)).toBeUndefined();
  });

  it('redacts keys and tokens in logged URLs', () => {
    expect(redactUrl('/api/v1/fleet/stream?key=flk_secret')).toBe('/api/v1/fleet/stream?key=[redacted]');
    expect(redactUrl('/x?limit=3&Token=t&q=key')).toBe('/x?limit=3&Token=[redacted]&q=key');
    expect(redactUrl('/api/v1/devices')).toBe('/api/v1/devices');
  });
});
