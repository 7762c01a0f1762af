import { describe, it, expect } from '@jest/globals';
import { ConfigError, localApiListen, parseAgentConfig } from './config.js';

describe('agent config', () => {
  it('fills defaults for an empty file', () => {
    const c = parseAgentConfig({});
    expect(c.localApi).toEqual({ port: 7878, host: '127.0.0.1', socketMode: '0660', enabled: true });
    expect(c.telemetryIntervalSeconds).toBe(60);
    expect(c.maxActivationRestarts).toBe(3);
    expect(c.runtimes.onnx.enabled).toBe(true);
  });

  it('applies FLEET_AGENT_* overrides over the file', () => {
    const c = parseAgentConfig(
      { hardwareClass: 'a', localApi: { port: 9000 } },
      {
        FLEET_AGENT_HARDWARE_CLASS: 'jetson-orin',
        FLEET_AGENT_LOCAL_API_PORT: '0',
        FLEET_AGENT_ACCELERATORS: 'cuda,tensorrt',
        FLEET_AGENT_HEALTH_COMMAND: '/usr/bin/check-model',
      },
    );
    expect(c.hardwareClass).toBe('jetson-orin');
    expect(c.localApi.port).toBe(0);
    expect(c.accelerators).toEqual(['cuda', 'tensorrt']);
    expect(c.runtimes.command).toMatchObject({ command: '/usr/bin/check-model', timeoutSeconds: 60 });
  });

  it("local API: a Unix socket by default on Linux, in systemd's runtime directory when there is one; TCP loopback when asked or elsewhere", () => {
    const defaults = parseAgentConfig({}).localApi;
    expect(localApiListen(defaults, '/var/lib/fleet-agent', 'linux', {})).toEqual({
      transport: 'unix',
      socketPath: '/var/lib/fleet-agent/local-api.sock',
      socketMode: 0o660,
    });
    expect(localApiListen(defaults, '/var/lib/fleet-agent', 'linux', { RUNTIME_DIRECTORY: '/run/fleet-agent' })).toMatchObject({
      socketPath: '/run/fleet-agent/local-api.sock',
    });
    expect(localApiListen(defaults, '/data', 'darwin', {})).toEqual({ transport: 'tcp', port: 7878, host: '127.0.0.1' });
    const tcp = parseAgentConfig({}, { FLEET_AGENT_LOCAL_API_TRANSPORT: 'tcp', FLEET_AGENT_LOCAL_API_PORT: '0' }).localApi;
    expect(localApiListen(tcp, '/data', 'linux', {})).toEqual({ transport: 'tcp', port: 0, host: '127.0.0.1' });
    const owner = parseAgentConfig({ localApi: { socketPath: '/run/app/agent.sock' } }, { FLEET_AGENT_LOCAL_API_SOCKET_MODE: '0600' }).localApi;
    expect(localApiListen(owner, '/data', 'darwin', {})).toEqual({ transport: 'unix', socketPath: '/run/app/agent.sock', socketMode: 0o600 });
    // A world-writable socket is not a choice.
    expect(() => parseAgentConfig({ localApi: { socketMode: '0666' } })).toThrow(/localApi\.socketMode/);
    expect(() => parseAgentConfig({}, { FLEET_AGENT_LOCAL_API_TRANSPORT: 'http' })).toThrow(/localApi\.transport/);
  });

  it('takes an MQTT client certificate and key together (file or FLEET_AGENT_MQTT_CLIENT_*), never one alone', () => {
    const env = { FLEET_AGENT_MQTT_CLIENT_CERT_FILE: '/etc/fleet/dev.pem', FLEET_AGENT_MQTT_CLIENT_KEY_FILE: '/etc/fleet/dev.key' };
    expect(parseAgentConfig({}, env)).toMatchObject({ mqttClientCertFile: '/etc/fleet/dev.pem', mqttClientKeyFile: '/etc/fleet/dev.key' });
    expect(parseAgentConfig({})).not.toHaveProperty('mqttClientCertFile');
    expect(() => parseAgentConfig({ mqttClientCertFile: '/etc/fleet/dev.pem' })).toThrow(
      /mqttClientKeyFile: set both mqttClientCertFile and mqttClientKeyFile/,
    );
    expect(() => parseAgentConfig({}, { FLEET_AGENT_MQTT_CLIENT_KEY_FILE: '/k' })).toThrow(ConfigError);
  });

  it('names the bad field', () => {
    expect(() => parseAgentConfig({ localApi: { port: 70000 } })).toThrow(/localApi\.port/);
    try {
      parseAgentConfig({ localApi: { port: 70000 } });
    } catch (err: unknown) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe('localApi.port');
    }
    expect(() => parseAgentConfig({}, { FLEET_AGENT_TELEMETRY_INTERVAL_SECONDS: 'often' })).toThrow(/telemetryIntervalSeconds/);
    expect(() => parseAgentConfig({ telemetryIntervall: 5 })).toThrow(ConfigError);
    expect(() => parseAgentConfig([])).toThrow(/\(root\)/);
  });
});
