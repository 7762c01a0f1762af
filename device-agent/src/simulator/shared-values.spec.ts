import { describe, expect, it } from '@jest/globals';
import type { DeviceCredentials } from '@fleetline/protocol';
import { InternPool, shareCredentials } from './shared-values.js';
import { serverList } from './simulation.js';

const creds = (id: string): DeviceCredentials =>
  // JSON.parse: separate string copies, as every parsed enrollment answer has.
  JSON.parse(
    JSON.stringify({
      deviceId: id,
      secret: `secret-${id}-0123456789abcdef0123456789`,
      mqtt: { url: 'mqtt://127.0.0.1:1', urls: ['mqtt://127.0.0.1:1', 'mqtt://127.0.0.1:2'], clientId: id, username: id },
      http: { baseUrl: 'http://127.0.0.1:3' },
      tuf: { root: '{"signed":{"keys":"..."}}', metadataUrl: 'http://127.0.0.1:3/tuf/metadata', targetsUrl: 'http://127.0.0.1:3/tuf/targets' },
      protocolVersion: 1,
    }),
  ) as DeviceCredentials;

describe('shareCredentials', () => {
  it('keeps every value and shares the ones devices have in common', () => {
    const pool = new InternPool();
    const a = shareCredentials(creds('dev-a'), pool);
    const b = shareCredentials(creds('dev-b'), pool);
    expect(a).toEqual(creds('dev-a'));
    expect(b).toEqual(creds('dev-b'));
    expect(a.mqtt.urls).toBe(b.mqtt.urls);
    expect(a.secret).not.toBe(b.secret);
  });

  it('stops interning at its bound', () => {
    const pool = new InternPool(1);
    expect(pool.string('x')).toBe('x');
    expect(pool.string('y')).toBe('y');
    expect(pool.list(['x'])).toEqual(['x']);
  });
});

describe('serverList', () => {
  it('accepts repeated and comma-separated servers', () => {
    expect(serverList(['http://a:1,http://b:2', ' http://c:3 '])).toEqual(['http://a:1', 'http://b:2', 'http://c:3']);
    expect(serverList('http://a:1')).toEqual(['http://a:1']);
    expect(() => serverList(' , ')).toThrow('at least one enrollment server');
  });
});
