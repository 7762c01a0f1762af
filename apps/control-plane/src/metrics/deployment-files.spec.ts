import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
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
    expect(services['fleetline']?.ports).toEqual(expect.arrayContaining([expect.stringContaining(':3000'), expect.stringContaining(':1883')]));
    for (const name of ['postgres', 'mosquitto', 'control-plane-1', 'control-plane-2']) expect(services[name]?.profiles).toEqual(['scale']);
    for (const name of ['control-plane-1', 'control-plane-2']) {
      const env = services[name]!.environment!;
      expect(env['MQTT_URL']).toBe('mqtt://mosquitto:1883');
      expect(env['MQTT_SHARED_GROUP']).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(env['DATABASE_URL']).toMatch(/^postgres:\/\/.*@postgres:5432\//);
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

  it('Dockerfiles: multi-stage on node:20-bookworm-slim, non-root, data volume, HTTP and MQTT ports', () => {
    const control = read('Dockerfile');
    expect(control).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(control.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(control).toMatch(/RUN npm ci /);
    expect(control).toContain('npx tsc -b tsconfig.build.json');
    expect(control).toMatch(/^USER node$/m);
    expect(control).toMatch(/^VOLUME \/data$/m);
    expect(control).toMatch(/^EXPOSE 3000 1883$/m);
    const agent = read('Dockerfile.agent');
    expect(agent).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(agent).toMatch(/^USER node$/m);
    expect(agent).toContain('device-agent/dist/cli/main.js');
  });

  it('Mosquitto: no per-client queue cap, persistence, ACL confining devices to their own topics', () => {
    const conf = read('mosquitto/mosquitto.conf');
    const settings = new Map(
      conf
        .split('\n')
        .filter((line) => line.trim() && !line.trim().startsWith('#'))
        .map((line) => [line.split(/\s+/)[0]!, line.split(/\s+/).slice(1).join(' ')] as const),
    );
    expect(settings.get('max_queued_messages')).toBe('0');
    expect(settings.get('persistence')).toBe('true');
    expect(settings.get('allow_anonymous')).toBe('false');
    expect(conf).toMatch(/plugin/);
    const acl = read('mosquitto/acl');
    for (const kind of ['reported', 'inventory', 'presence', 'telemetry']) expect(acl).toContain(`pattern write fleet/v1/devices/%u/${kind}`);
    expect(acl).toContain('pattern read fleet/v1/devices/%u/desired/+');
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
    const unused = [...known].filter(
      (name) => !used.has(name) && !optional.has(name) && !/_(bucket|sum|count)$/.test(name) && name !== 'fleetline_http_request_duration_seconds',
    );
    expect(unused).toEqual([]);
  });
});
