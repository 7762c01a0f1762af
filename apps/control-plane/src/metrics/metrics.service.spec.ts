import { DownloadAdmission } from '../distribution/download-admission.js';
import type { DataSource } from 'typeorm';
import { describe, expect, it, jest } from '@jest/globals';
import { DeviceIngestMetrics } from '../devices/reports/device-ingest-metrics.js';
import type { AppliedReport, ReportIngestService } from '../devices/reports/report-ingest.service.js';
import { BrokerMetrics } from '../infra/mqtt/broker-metrics.js';
import { EmbeddedBrokerGateway } from '../infra/mqtt/embedded-broker.gateway.js';
import type { DesiredSyncService } from '../devices/sync/desired-sync.service.js';
import { TelemetryIngestMetrics } from '../telemetry/ingest/telemetry-ingest.metrics.js';
import type { FleetMetricsRepository, FleetSnapshot } from './fleet-metrics.repository.js';
import { MetricsService } from './metrics.service.js';
import type { RefusalAudit } from '../access/refusal-audit.js';
import type { AppConfig } from '../infra/config/app-config.js';
import { SourceLimits } from '../infra/rate-limit/source-limits.js';

const snapshot: FleetSnapshot = {
  devices: { online: 7, offline: 3, decommissioned: 1 },
  modelVersions: [
    { model: 'detector', version: '1.0.0', devices: 6 },
    { model: 'detector', version: null, devices: 2 },
  ],
  rolloutsByState: [{ state: 'completed', rollouts: 4 }],
  activeRolloutDevices: [{ rolloutId: 'r-1', model: 'detector', version: '2.0.0', state: 'committed', devices: 5 }],
};

function report(state: AppliedReport['state'], extra: Partial<AppliedReport> = {}): AppliedReport {
  return {
    deviceId: 'cam-1',
    model: 'detector',
    version: '2.0.0',
    revision: 1,
    state,
    activeVersion: null,
    previousVersion: null,
    failureCode: null,
    failureMessage: null,
    rolloutId: null,
    currentAssignment: true,
    at: new Date().toISOString(),
    ...extra,
  };
}

function build(load: () => Promise<FleetSnapshot>) {
  const listeners: ((reports: AppliedReport[]) => void)[] = [];
  const reportIngest = { onReportsApplied: (l: (reports: AppliedReport[]) => void) => listeners.push(l) } as unknown as ReportIngestService;
  const broker = new BrokerMetrics();
  const gateway = new EmbeddedBrokerGateway(
    { port: 0, host: '127.0.0.1', maxPacketBytes: 1024, drainTimeoutMs: 1000, maxPendingConnects: 256, replicaId: 'spec' },
    broker,
  );
  jest.spyOn(gateway, 'connectionCount').mockReturnValue(3);
  const devices = new DeviceIngestMetrics();
  const telemetry = new TelemetryIngestMetrics();
  const sync = { counters: { devices: 7, messages: 9, failures: 1 } } as unknown as DesiredSyncService;
  const service = new MetricsService(
    { snapshot: load } as unknown as FleetMetricsRepository,
    { requireKey: false, fleetCacheMs: 0 },
    gateway,
    reportIngest,
    devices,
    telemetry,
    sync,
    new SourceLimits({ rateLimits: { enroll: { burst: 1, perSecond: 1 }, deviceAuthFailures: { burst: 1, perSecond: 1 } } } as unknown as AppConfig),
    { dropped: 0 } as unknown as RefusalAudit,
    { driver: {} } as unknown as DataSource,
    new DownloadAdmission({ downloadAdmission: { maxStreams: 8, busyRetrySeconds: 2 } } as unknown as AppConfig),
  );
  service.onModuleInit();
  return { service, listeners, broker, devices, telemetry };
}

describe('MetricsService', () => {
  it('exports fleet gauges, copied counters and update outcomes, without device ids', async () => {
    const { service, listeners, broker, devices, telemetry } = build(async () => snapshot);
    broker.denied('connect', 'bad credentials');
    devices.record('reported', 'malformed', 2);
    telemetry.received = 10;
    telemetry.accepted = 8;
    telemetry.droppedOverload = 2;
    listeners[0]!([
      report('downloading'),
      report('committed'),
      report('failed', { failureCode: 'install-failed' }),
      report('committed', { currentAssignment: false }),
    ]);

    const text = await service.render();
    expect(text).toContain('fleetline_devices{presence="online"} 7');
    expect(text).toContain('fleetline_devices{presence="decommissioned"} 1');
    expect(text).toContain('fleetline_model_version_devices{model="detector",version="none"} 2');
    expect(text).toContain('fleetline_rollouts{state="running"} 0');
    expect(text).toContain('fleetline_rollouts{state="completed"} 4');
    expect(text).toContain('fleetline_rollout_devices{rollout="r-1",model="detector",version="2.0.0",state="committed"} 5');
    expect(text).toContain('fleetline_update_outcomes_total{model="detector",state="committed",failure_code="none"} 1');
    expect(text).toContain('fleetline_update_outcomes_total{model="detector",state="failed",failure_code="install-failed"} 1');
    expect(text).not.toContain('state="downloading"');
    expect(text).toContain('fleetline_device_messages_total{stream="reported",outcome="malformed"} 2');
    expect(text).toContain('fleetline_device_messages_total{stream="presence",outcome="unknown_device"} 0');
    expect(text).toContain('fleetline_telemetry_samples_total{outcome="dropped_overload"} 2');
    expect(text).toContain('fleetline_telemetry_messages_received_total 10');
    expect(text).toContain('fleetline_mqtt_connections 3');
    expect(text).toContain('fleetline_mqtt_denials_total{kind="connect"} 1');
    expect(text).toContain('fleetline_desired_sync_total{kind="devices"} 7');
    expect(text).toContain('fleetline_desired_sync_total{kind="failed_batches"} 1');
    expect(text).not.toContain('cam-1');
  });

  it('serves the last fleet values and counts the error when the database fails', async () => {
    let fail = false;
    const { service } = build(async () => {
      if (fail) throw new Error('connection refused');
      return snapshot;
    });
    expect(await service.render()).toContain('fleetline_devices{presence="online"} 7');
    fail = true;
    const text = await service.render();
    expect(text).toContain('fleetline_devices{presence="online"} 7');
    expect(text).toContain('fleetline_metrics_scrape_errors_total{source="database"} 1');
  });

  it('keeps one registry per instance, so several apps can live in one process', async () => {
    const a = build(async () => snapshot).service;
    const b = build(async () => ({ ...snapshot, devices: { online: 1, offline: 0, decommissioned: 0 } })).service;
    expect(a.registry).not.toBe(b.registry);
    expect(await b.render()).toContain('fleetline_devices{presence="online"} 1');
    expect(await a.render()).toContain('fleetline_devices{presence="online"} 7');
  });
});
