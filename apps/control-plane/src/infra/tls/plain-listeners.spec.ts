import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '../config/config.schema.js';
import { configuredListeners, exposedPlainListeners, isLoopbackHost, plainListenerWarning, plainPublicUrls } from './plain-listeners.js';

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.4.5.6', '::1', '[::1]', 'localhost', 'LOCALHOST', 'api.localhost', '::ffff:127.0.0.1'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each(['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'fleet.example.com', '128.0.0.1', '::2'])('%s is not', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('exposedPlainListeners', () => {
  it('reports plain listeners on non-loopback addresses only', () => {
    const listeners = [
      { name: 'HTTP', host: '0.0.0.0', port: 3000, tls: false },
      { name: 'MQTT', host: '127.0.0.1', port: 1883, tls: false },
      { name: 'MQTT over TLS', host: '0.0.0.0', port: 8883, tls: true },
      { name: 'MQTT over WebSocket', host: '10.1.2.3', port: 8080, tls: false },
    ];
    expect(exposedPlainListeners(listeners).map((l) => l.name)).toEqual(['HTTP', 'MQTT over WebSocket']);
    expect(plainListenerWarning(listeners)).toContain('HTTP on 0.0.0.0:3000, MQTT over WebSocket on 10.1.2.3:8080');
    expect(plainListenerWarning(listeners.filter((l) => l.tls || l.host === '127.0.0.1'))).toBeUndefined();
  });
});

describe('configuredListeners', () => {
  const tls = { certFile: '/c.pem', keyFile: '/k.pem', watchIntervalMs: 0 };

  it('the default layout (0.0.0.0, no TLS) exposes plain HTTP and MQTT', () => {
    const config = loadConfig({ DATA_DIR: '/tmp/x' });
    expect(exposedPlainListeners(configuredListeners(config)).map((l) => `${l.name}:${l.port}`)).toEqual(['HTTP:3000', 'MQTT:1883']);
  });

  it('with TLS on: HTTPS, MQTT over TLS, and plain MQTT unless MQTT_PLAIN=false', () => {
    const base = loadConfig({ DATA_DIR: '/tmp/x', MQTT_WS_PORT: '8080' });
    const on = { ...base, tls, mqtt: { ...base.mqtt, tlsPort: 8883, wssPort: 8884 } } as typeof base;
    expect(configuredListeners(on).map((l) => [l.name, l.port, l.tls])).toEqual([
      ['HTTPS', 3000, true],
      ['MQTT', 1883, false],
      ['MQTT over WebSocket', 8080, false],
      ['MQTT over TLS', 8883, true],
      ['MQTT over secure WebSocket', 8884, true],
    ]);
    const tlsOnly = { ...on, mqtt: { ...on.mqtt, plain: false } } as typeof base;
    expect(exposedPlainListeners(configuredListeners(tlsOnly))).toEqual([]);
  });

  it('an external broker opens only the HTTP listener', () => {
    const config = loadConfig({ DATA_DIR: '/tmp/x', MQTT_URL: 'mqtt://broker:1883' });
    expect(configuredListeners(config).map((l) => l.name)).toEqual(['HTTP']);
  });
});

describe('plainPublicUrls', () => {
  it('names the plain addresses devices would be handed while TLS is on', () => {
    const base = loadConfig({ DATA_DIR: '/tmp/x', MQTT_PUBLIC_URL: 'mqtts://a:8883,mqtt://b:1883', PUBLIC_URL: 'http://fleet:3000' });
    expect(plainPublicUrls(base)).toEqual([]); // TLS off: nothing to contradict
    expect(plainPublicUrls({ ...base, tls: { certFile: '/c', keyFile: '/k', watchIntervalMs: 0 } })).toEqual(['mqtt://b:1883', 'http://fleet:3000']);
  });
});
