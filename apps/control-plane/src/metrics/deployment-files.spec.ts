import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { BROKER_AUTH_PATHS } from '../broker-auth/broker-auth.controller.js';
import { exportedSeriesNames } from './metric-names.js';

/**
 * Docker does not run in CI, so the files under docker/ are kept honest here: every YAML and
 * JSON file parses, the compose file references only files and volumes that exist, and the
 * Grafana dashboard queries only metrics the control plane exports.
 */
const DOCKER = join(dirname(fileURLToPath(import.meta.url)), '../../../../docker');
const read = (path: string): string => readFileSync(join(DOCKER, path), 'utf8');
// Compose applies YAML merge keys (`<<: *anchor`); the yaml package does so only when asked.
const yamlFile = (path: string): Record<string, unknown> => parseYaml(read(path), { merge: true }) as Record<string, unknown>;

interface ComposeService {
  image?: string;
  command?: string | string[];
  entrypoint?: string[];
  build?: { context: string; dockerfile: string };
  profiles?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: string[] | Record<string, unknown>;
}

describe('docker/ deployment files', () => {
  it('compose: the single container, and a scale profile with PostgreSQL, Mosquitto and two replicas on a shared group', () => {
    const compose = yamlFile('compose.yaml') as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
    const { services } = compose;
    expect(services['fleetline']?.profiles).toBeUndefined();
    expect(services['fleetline']?.volumes).toContain('fleetline-data:/data');
    expect(services['fleetline']?.ports).toEqual([expect.stringContaining(':3000')]);
    for (const name of ['mosquitto', 'control-plane-1', 'control-plane-2']) expect(services[name]?.profiles).toEqual(['scale']);
    expect(services['postgres']?.profiles).toEqual(['scale', 'cluster']);
    for (const name of ['control-plane-1', 'control-plane-2']) {
      const env = services[name]!.environment!;
      expect(env['MQTT_URL']).toBe('mqtt://mosquitto:1883');
      expect(env['MQTT_USERNAME']).toBe('fleetline-cp');
      expect(env['MQTT_SHARED_GROUP']).toMatch(/^[A-Za-z0-9_-]+$/);
      // The database URL is built in the container from the generated password, never in the file.
      expect(env['DATABASE_URL']).toBeUndefined();
      expect(([] as string[]).concat(services[name]!.command ?? []).join(' ')).toMatch(/DATABASE_URL="postgres:\/\/.*@postgres:5432\//);
      expect(services[name]!.build?.dockerfile).toBe('docker/Dockerfile');
    }
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect({ name, exists: existsSync(join(DOCKER, source)) }).toEqual({ name, exists: true });
        else expect(Object.keys(compose.volumes)).toContain(source);
      }
      const dependencies = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const dependency of dependencies) expect(Object.keys(services)).toContain(dependency);
    }
  });

  it('compose: a cluster profile with Redis and three replicas with their own brokers, each named, all brokers handed to devices, TLS in front', () => {
    const { services } = yamlFile('compose.yaml') as { services: Record<string, ComposeService> };
    expect(services['redis']?.profiles).toEqual(['cluster']);
    const replicas = ['replica-1', 'replica-2', 'replica-3'];
    const ids = new Set<string>();
    for (const name of replicas) {
      const service = services[name]!;
      expect(service.profiles).toEqual(['cluster']);
      const env = service.environment!;
      expect(env['REDIS_URL']).toBe('redis://redis:6379');
      expect(env['MQTT_URL']).toBeUndefined();
      expect(env['DATABASE_URL']).toBeUndefined();
      expect(([] as string[]).concat(service.command ?? []).join(' ')).toMatch(/DATABASE_URL="postgres:\/\/.*@postgres:5432\//);
      ids.add(env['REPLICA_ID']!);
      // The same broker list everywhere: three TLS addresses, one per replica.
      expect(env['MQTT_PUBLIC_URL']).toBe(services['replica-1']!.environment!['MQTT_PUBLIC_URL']);
      expect(env['MQTT_PUBLIC_URL']!.match(/mqtts:\/\//g)).toHaveLength(3);
      expect(service.volumes).toContain('fleetline-cluster:/data');
      expect(services[`${name}-mqtts`]?.command).toContain(`TCP:${name}:1883`);
    }
    expect(ids.size).toBe(3);
  });

  it('compose: no default password anywhere, secrets generated on first start, no plaintext MQTT port unless asked for', () => {
    const text = read('compose.yaml');
    expect(text).not.toMatch(/change-me/i);
    // No password with a fallback value (`${X_PASSWORD:-...}`), nor one spelled out in a URL.
    expect(text).not.toMatch(/PASSWORD:-/);
    expect(text).not.toMatch(/postgres:\/\/[^:\s]+:[^@$\s]+@/);
    const { services } = yamlFile('compose.yaml') as { services: Record<string, ComposeService> };
    for (const [name, service] of Object.entries(services)) {
      // Neither password may come from the compose file or the environment with a default.
      expect({
        name,
        // Only *_FILE settings, which name a generated file, may carry a password.
        env: Object.keys(service.environment ?? {}).filter((k) => /PASSWORD|SECRET/.test(k) && !/_FILE$/.test(k)),
      }).toEqual({ name, env: [] });
      // A published 1883 (plaintext MQTT) exists only behind the mqtt-plaintext profile.
      const plaintext = (service.ports ?? []).filter((port) => /(^|:)1883$/.test(port.replace(/'/g, '')));
      if (plaintext.length > 0) expect({ name, profiles: service.profiles }).toEqual({ name, profiles: ['mqtt-plaintext'] });
    }
    const init = (services['broker-secrets']?.entrypoint ?? []).join('\n');
    expect(init).toContain('/dev/urandom');
    for (const file of [
      'cp-password',
      'broker-auth-secret',
      'postgres-password',
      'grafana-admin-password',
      'mosquitto.d/go-auth-host.conf',
      'tls/server.crt',
      'tls/server.key',
    ])
      expect(init).toContain(file);
    // Every service that uses a generated secret mounts the volume and waits for the generator.
    for (const name of ['postgres', 'grafana', 'control-plane-1', 'replica-1']) {
      const service = services[name]!;
      expect({ name, mounted: (service.volumes ?? []).some((v) => v.startsWith('broker-secrets:/run/fleetline-broker')) }).toEqual({ name, mounted: true });
    }
    expect(services['postgres']?.environment?.['POSTGRES_PASSWORD_FILE']).toBe('/run/fleetline-broker/postgres-password');
    expect(services['grafana']?.environment?.['GF_SECURITY_ADMIN_PASSWORD__FILE']).toBe('/run/fleetline-broker/grafana-admin-password');
    for (const name of ['replica-1', 'replica-2', 'replica-3']) {
      const command = ([] as string[])
        .concat(services[name]!.command ?? [])
        .join(' ')
        .replaceAll('$$', '$');
      expect(command).toContain('DATABASE_URL="postgres://fleetline:$(cat /run/fleetline-broker/postgres-password)@postgres:5432/fleetline"');
    }
    // Generated once: an existing secret is kept (a restart must not lock the replicas out).
    expect(init).toMatch(/\[ -s "\$\$d\/cp-password" \] \|\|/);
    expect(init).toContain('auth_opt_http_host fleetline-broker:%s@control-plane');
    for (const name of ['control-plane-1', 'control-plane-2']) {
      // Compose turns "$$" into a literal "$" for the container's shell.
      const command = ([] as string[])
        .concat(services[name]!.command ?? [])
        .join(' ')
        .replaceAll('$$', '$');
      expect(command).toContain('MQTT_PASSWORD="$(cat /run/fleetline-broker/cp-password)"');
      expect(command).toContain('BROKER_AUTH_SECRET="$(cat /run/fleetline-broker/broker-auth-secret)"');
      expect(command).toContain('exec node apps/control-plane/dist/main.js');
      expect(services[name]!.volumes).toContain('broker-secrets:/run/fleetline-broker:ro');
    }
    expect(services['mosquitto']?.image).toContain('iegomez/mosquitto-go-auth');
    expect(services['mosquitto']?.ports).toEqual([expect.stringMatching(/:8883$/)]);
    expect(services['mosquitto']?.volumes).toContain('broker-secrets:/run/fleetline-broker:ro');
    // Persistence goes to the directory the image gives the broker's own user.
    expect(services['mosquitto']?.volumes).toContain('mosquitto-data:/var/lib/mosquitto');
  });

  it('Dockerfiles: multi-stage on node:20-bookworm-slim, non-root, data volume, HTTP and MQTT ports', () => {
    const control = read('Dockerfile');
    expect(control).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(control.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(control).toMatch(/RUN npm ci /);
    expect(control).toContain('npx tsc -b tsconfig.build.json');
    expect(control).toMatch(/^USER node$/m);
    expect(control).toMatch(/^VOLUME \/data$/m);
    // 8883: the embedded broker's own MQTT-over-TLS listener (TLS_CERT_FILE / TLS_KEY_FILE).
    expect(control).toMatch(/^EXPOSE 3000 1883 8883$/m);
    // The health probe follows PORT to HTTPS when TLS is on.
    expect(control).toMatch(/^HEALTHCHECK[\s\S]*TLS_CERT_FILE \? 'node:https' : 'node:http'[\s\S]*\/readyz/m);
    const agent = read('Dockerfile.agent');
    expect(agent).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(agent).toMatch(/^USER node$/m);
    expect(agent).toContain('device-agent/dist/cli/main.js');
  });

  it('Mosquitto: mosquitto-go-auth against the control plane, TLS for devices, no retained messages, no per-client queue cap', () => {
    const conf = read('mosquitto/mosquitto.conf');
    const lines = conf.split('\n').filter((line) => line.trim() && !line.trim().startsWith('#'));
    const settings = new Map(lines.map((line) => [line.split(/\s+/)[0]!, line.split(/\s+/).slice(1).join(' ')] as const));
    expect(settings.get('max_queued_messages')).toBe('0');
    expect(settings.get('persistence')).toBe('true');
    expect(settings.get('persistence_location')).toBe('/var/lib/mosquitto/');
    expect(settings.get('allow_anonymous')).toBe('false');
    expect(settings.get('retain_available')).toBe('false');
    expect(settings.get('plugin')).toBe('/mosquitto/go-auth.so');
    expect(settings.get('auth_opt_backends')).toBe('http');
    expect(settings.get('auth_opt_http_getuser_uri')).toBe(BROKER_AUTH_PATHS.goAuthUser);
    expect(settings.get('auth_opt_http_superuser_uri')).toBe(BROKER_AUTH_PATHS.goAuthSuperuser);
    expect(settings.get('auth_opt_http_aclcheck_uri')).toBe(BROKER_AUTH_PATHS.goAuthAcl);
    expect(settings.get('auth_opt_http_params_mode')).toBe('json');
    expect(settings.get('auth_opt_http_response_mode')).toBe('json');
    expect(settings.get('auth_opt_http_port')).toBe('3000');
    // The generated include (with the broker secret) comes last, as Mosquitto recommends.
    expect(lines.at(-1)).toBe('include_dir /run/fleetline-broker/mosquitto.d');
    // The rules live in the control plane now: no password or ACL file to drift from them.
    expect(settings.has('password_file')).toBe(false);
    expect(settings.has('acl_file')).toBe(false);
    expect(existsSync(join(DOCKER, 'mosquitto/acl'))).toBe(false);
    expect(lines).toEqual(
      expect.arrayContaining(['listener 8883 0.0.0.0', 'certfile /run/fleetline-broker/tls/server.crt', 'keyfile /run/fleetline-broker/tls/server.key']),
    );
  });

  it('Prometheus scrapes /metrics of every control-plane service', () => {
    const config = yamlFile('prometheus/prometheus.yml') as {
      scrape_configs: { job_name: string; metrics_path: string; dns_sd_configs: { names: string[]; port: number }[] }[];
    };
    const job = config.scrape_configs.find((c) => c.job_name === 'fleetline');
    expect(job?.metrics_path).toBe('/metrics');
    expect(job?.dns_sd_configs[0]).toMatchObject({ names: ['fleetline', 'control-plane-1', 'control-plane-2'], port: 3000 });
  });

  it('Grafana provisioning points at the dashboard and the Prometheus service', () => {
    const datasources = yamlFile('grafana/provisioning/datasources/prometheus.yaml') as { datasources: { type: string; url: string }[] };
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    const dashboards = yamlFile('grafana/provisioning/dashboards/fleetline.yaml') as { providers: { options: { path: string } }[] };
    expect(dashboards.providers[0]?.options.path).toBe('/var/lib/grafana/dashboards');
  });

  it('the Grafana dashboard queries only exported metrics and covers each of them', async () => {
    const dashboard = JSON.parse(read('grafana/fleetline-dashboard.json')) as {
      uid: string;
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe('fleetline-overview');
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:fleetline|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)));

    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const defaults = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const known = exportedSeriesNames();
    const unknown = [...used].filter((name) => !known.has(name) && !defaults.has(name));
    expect(unknown).toEqual([]);

    // Everything worth watching has a panel (the bookkeeping counters may be left out).
    const optional = new Set(['fleetline_telemetry_batches_total', 'fleetline_metrics_scrape_errors_total']);
    // A histogram counts as watched when its buckets are (a quantile panel never names the bare family).
    const unused = [...known].filter((name) => !used.has(name) && !used.has(`${name}_bucket`) && !optional.has(name) && !/_(bucket|sum|count)$/.test(name));
    expect(unused).toEqual([]);
  });
});
