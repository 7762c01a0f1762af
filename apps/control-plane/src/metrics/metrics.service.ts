import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { isTerminalUpdateState } from '@fleetline/protocol';
import { DataSource } from 'typeorm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DeviceIngestMetrics } from '../devices/reports/device-ingest-metrics.js';
import { type AppliedReport, ReportIngestService } from '../devices/reports/report-ingest.service.js';
import { DesiredSyncService } from '../devices/sync/desired-sync.service.js';
import type { AdmissionBound } from '../infra/admission/admission-bound.js';
import { EmbeddedBrokerGateway } from '../infra/mqtt/embedded-broker.gateway.js';
import { DISCONNECT_REASONS } from '../infra/mqtt/broker-metrics.js';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { TELEMETRY_REJECT_REASONS } from '../telemetry/ingest/telemetry-bounds.js';
import { TelemetryIngestMetrics } from '../telemetry/ingest/telemetry-ingest.metrics.js';
import { RefusalAudit } from '../access/refusal-audit.js';
import { DownloadAdmission } from '../distribution/download-admission.js';
import { SourceLimits } from '../infra/rate-limit/source-limits.js';
import { CachedSnapshot } from './cached-snapshot.js';
import { type FleetSnapshot, FleetMetricsRepository } from './fleet-metrics.repository.js';
import { METRIC } from './metric-names.js';
import { METRICS_CONFIG, type MetricsConfig } from './metrics.config.js';
import { ACTIVE_ROLLOUT_STATES } from '../rollouts/lifecycle/rollout-transitions.js';

/** Seconds; uploads and long-lived streams land in the upper buckets. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** TelemetryIngestMetrics counters exported as fleetline_telemetry_samples_total{outcome}. */
const TELEMETRY_OUTCOMES = [
  ['accepted', 'accepted'],
  ['duplicate', 'duplicate'],
  ['malformed', 'malformed'],
  ['unknownDevice', 'unknown_device'],
  ['outOfWindow', 'out_of_window'],
  ['droppedOverload', 'dropped_overload'],
  ['writeFailed', 'write_failed'],
] as const;

/**
 * Prometheus exposition of one control-plane instance. Every metric lives in this instance's own
 * Registry (never prom-client's global one), so several apps can run in one process (tests).
 *
 * Three kinds of sources:
 *  - fleet gauges from the database (devices by presence, per model version, rollouts by state,
 *    active-rollout progress): computed at scrape time by GROUP BY queries behind a short cache;
 *  - counters the feature code keeps as plain numbers (ingest outcomes, broker denials), copied
 *    at scrape time so the hot paths never call into prom-client;
 *  - live instruments: HTTP request durations and terminal update outcomes.
 *
 * No metric carries a device id: a million devices would be a million series.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  private readonly logger = new Logger('Metrics');
  readonly registry = new Registry();
  private readonly fleet: CachedSnapshot<FleetSnapshot>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly updateOutcomes: Counter<'model' | 'state' | 'failure_code'>;
  private readonly scrapeErrors: Counter<'source'>;

  constructor(
    repository: FleetMetricsRepository,
    @Inject(METRICS_CONFIG) config: MetricsConfig,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly reportIngest: ReportIngestService,
    private readonly deviceIngest: DeviceIngestMetrics,
    private readonly telemetryIngest: TelemetryIngestMetrics,
    private readonly desiredSync: DesiredSyncService,
    private readonly sourceLimits: SourceLimits,
    private readonly refusalAudit: RefusalAudit,
    private readonly dataSource: DataSource,
    downloads: DownloadAdmission,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    // ---- fleet gauges (database) -------------------------------------------------------------
    const snapshotOf = (): Promise<FleetSnapshot | undefined> => this.fleetSnapshot();
    this.scrapeErrors = new Counter({
      name: METRIC.scrapeErrors,
      help: 'Scrapes in which a metrics source failed (the last good values were served).',
      labelNames: ['source'],
      registers,
      // prom-client collects all metrics concurrently: wait for this scrape's load to settle.
      async collect() {
        await snapshotOf();
      },
    });
    this.fleet = new CachedSnapshot(async () => {
      try {
        return await repository.snapshot();
      } catch (err) {
        // Counted once per failed load, however many gauges were waiting for it.
        this.scrapeErrors.inc({ source: 'database' });
        this.logger.warn(`fleet gauges: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    }, config.fleetCacheMs);
    const fleetGauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (gauge: Gauge<L>, snapshot: FleetSnapshot) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect: async function (this: Gauge<L>) {
          const snapshot = await snapshotOf();
          if (!snapshot) return;
          // Rebuilt from scratch each scrape: a version or rollout that disappeared must drop out.
          this.reset();
          fill(this, snapshot);
        },
      });
    fleetGauge(METRIC.devices, 'Enrolled devices by presence (decommissioned devices are counted separately).', ['presence'], (g, s) => {
      g.set({ presence: 'online' }, s.devices.online);
      g.set({ presence: 'offline' }, s.devices.offline);
      g.set({ presence: 'decommissioned' }, s.devices.decommissioned);
    });
    fleetGauge(
      METRIC.modelVersionDevices,
      'Devices per active version of each model ("none": assigned but nothing active yet).',
      ['model', 'version'],
      (g, s) => {
        for (const row of s.modelVersions) g.inc({ model: row.model, version: row.version ?? 'none' }, row.devices);
      },
    );
    fleetGauge(METRIC.rollouts, 'Rollouts by state.', ['state'], (g, s) => {
      // Zeros for the active states keep "no rollout running" a visible 0 instead of no series.
      for (const state of ACTIVE_ROLLOUT_STATES) g.set({ state }, 0);
      for (const row of s.rolloutsByState) g.set({ state: row.state }, row.rollouts);
    });
    fleetGauge(
      METRIC.rolloutDevices,
      'Devices of each active rollout by rollout-device state (finished rollouts are not labelled).',
      ['rollout', 'model', 'version', 'state'],
      (g, s) => {
        for (const row of s.activeRolloutDevices) g.set({ rollout: row.rolloutId, model: row.model, version: row.version, state: row.state }, row.devices);
      },
    );

    // ---- update outcomes (live, from the report ingest) --------------------------------------
    this.updateOutcomes = new Counter({
      name: METRIC.updateOutcomes,
      help: 'Terminal update reports applied by this instance, by model, state and failure code ("none" on success).',
      labelNames: ['model', 'state', 'failure_code'],
      registers,
    });

    // ---- device ingest (DeviceIngestMetrics) ---------------------------------------------------
    const deviceCounts = this.deviceIngest;
    new Counter({
      name: METRIC.deviceMessages,
      help: 'Device messages (reported, inventory, presence) handled by this instance, by outcome; anything but "accepted" was dropped.',
      labelNames: ['stream', 'outcome'],
      registers,
      collect(this: Counter<'stream' | 'outcome'>) {
        this.reset();
        for (const { stream, outcome, count } of deviceCounts.snapshot()) this.inc({ stream, outcome: snakeCase(outcome) }, count);
      },
    });

    // ---- telemetry ingest (TelemetryIngestMetrics) ---------------------------------------------
    const telemetry = this.telemetryIngest;
    new Counter({
      name: METRIC.telemetryReceived,
      help: 'Telemetry messages received on the device telemetry topics.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(telemetry.received);
      },
    });
    new Counter({
      name: METRIC.telemetrySamples,
      help: 'Telemetry samples by ingest outcome; everything but "accepted" and "duplicate" is a drop.',
      labelNames: ['outcome'],
      registers,
      collect(this: Counter<'outcome'>) {
        this.reset();
        for (const [field, outcome] of TELEMETRY_OUTCOMES) this.inc({ outcome }, telemetry[field]);
      },
    });
    new Counter({
      name: METRIC.telemetryRejected,
      help: 'Well-formed telemetry refused because its claims could skew a rollout decision (acknowledged and dropped), by reason.',
      labelNames: ['reason'],
      registers,
      collect(this: Counter<'reason'>) {
        this.reset();
        for (const reason of TELEMETRY_REJECT_REASONS) this.inc({ reason }, telemetry.rejected[reason]);
      },
    });
    new Counter({
      name: METRIC.telemetryAgentDropped,
      help: 'Telemetry messages devices reported having dropped from their own offline queues.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(telemetry.agentDropped);
      },
    });
    new Counter({
      name: METRIC.telemetryBatches,
      help: 'Telemetry batch writes.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(telemetry.batches);
      },
    });
    new Gauge({
      name: METRIC.telemetryQueueDepth,
      help: 'Telemetry samples waiting in memory for the next batch write.',
      registers,
      collect(this: Gauge) {
        this.set(telemetry.queued);
      },
    });
    new Gauge({
      name: METRIC.telemetryLastBatchSeconds,
      help: 'Duration of the last telemetry batch write.',
      registers,
      collect(this: Gauge) {
        this.set(telemetry.lastBatchMs / 1000);
      },
    });

    // ---- broker ------------------------------------------------------------------------------------
    const broker = this.gateway;
    new Gauge({
      name: METRIC.mqttConnections,
      help: 'MQTT client connections to the embedded broker (absent with an external broker: use its own metrics).',
      registers,
      collect(this: Gauge) {
        const count = broker.connectionCount();
        if (count === null) this.reset();
        else this.set(count);
      },
    });
    // A replica whose queries queue for a pooled connection answers everything late, the admin API
    // included: `waiting` above zero for long says the pool (DATABASE_POOL_SIZE) or PostgreSQL is the limit.
    const pool = (this.dataSource.driver as { master?: { totalCount?: number; idleCount?: number; waitingCount?: number } }).master;
    new Gauge({
      name: METRIC.dbPool,
      help: 'PostgreSQL pool of this replica: connections in use, idle, and queries waiting for one (absent on PGlite).',
      labelNames: ['state'],
      registers,
      collect(this: Gauge<'state'>) {
        if (pool?.totalCount === undefined) return this.reset();
        this.set({ state: 'in_use' }, pool.totalCount - (pool.idleCount ?? 0));
        this.set({ state: 'idle' }, pool.idleCount ?? 0);
        this.set({ state: 'waiting' }, pool.waitingCount ?? 0);
      },
    });
    const sync = this.desiredSync.counters;
    new Counter({
      name: METRIC.desiredSync,
      help: 'Hellos answered from the database (devices), the desired-state messages sent in the answers, and failed answer batches.',
      labelNames: ['kind'],
      registers,
      collect(this: Counter<'kind'>) {
        this.reset();
        this.inc({ kind: 'devices' }, sync.devices);
        this.inc({ kind: 'messages' }, sync.messages);
        this.inc({ kind: 'failed_batches' }, sync.failures);
      },
    });
    const brokerMetrics = broker instanceof EmbeddedBrokerGateway ? broker.metrics : undefined;
    if (brokerMetrics) {
      new Counter({
        name: METRIC.mqttDenials,
        help: 'MQTT operations the embedded broker refused (connect, publish, subscribe, packet-size, tls handshakes).',
        labelNames: ['kind'],
        registers,
        collect(this: Counter<'kind'>) {
          this.reset();
          for (const kind of ['connect', 'publish', 'subscribe', 'packet-size', 'tls']) this.inc({ kind }, brokerMetrics.count(kind));
        },
      });
      new Counter({
        name: METRIC.mqttDisconnects,
        help: 'Device connections the embedded broker lost, by cause (keepalive-timeout, drain-timeout, error, takeover, control-plane, closed by the device).',
        labelNames: ['reason'],
        registers,
        collect(this: Counter<'reason'>) {
          this.reset();
          for (const reason of DISCONNECT_REASONS) this.inc({ reason }, brokerMetrics.disconnects.get(reason) ?? 0);
        },
      });
      // Commit-before-ack: a device waits this long for each PUBACK, and its PINGRESP waits behind it.
      const acks = new Histogram({
        name: METRIC.mqttAckSeconds,
        help: 'Seconds from a device PUBLISH reaching the broker to its acknowledgement, i.e. until it is stored (past half the keepalive, devices start dropping their connections).',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60],
        registers,
      });
      brokerMetrics.onAck = (seconds) => acks.observe(seconds);
    }
    const admission = broker instanceof EmbeddedBrokerGateway ? broker.admission : undefined;
    if (admission) {
      // Admission control (connect-admission.ts): `pending` pinned at the bound with `busy` refusals
      // rising means devices are arriving faster than this replica authenticates them.
      exportAdmission(registers, admission, 'pending', {
        gauge: METRIC.mqttConnectsPending,
        gaugeHelp:
          'Connections the embedded broker is establishing now (CONNECT until their hello is stored), and the bound (MQTT_MAX_PENDING_CONNECTS) past which it refuses CONNECTs.',
        refused: METRIC.mqttConnectsBusy,
        refusedHelp:
          'CONNECTs refused with "server unavailable" because MQTT_MAX_PENDING_CONNECTS connections were being established (the device backs off and retries).',
      });
    }

    // Download admission (distribution/download-admission.ts): `in-flight` at `limit` with busy
    // refusals rising means devices ask for artifacts faster than this replica streams them.
    exportAdmission(registers, downloads, 'in-flight', {
      gauge: METRIC.artifactStreams,
      gaugeHelp: 'Artifact downloads this replica is streaming now, the most at once since start, and the bound (ARTIFACT_MAX_STREAMS).',
      refused: METRIC.artifactStreamsBusy,
      refusedHelp: 'Artifact downloads answered 503 with Retry-After because ARTIFACT_MAX_STREAMS were streaming (the device waits and resumes).',
    });

    // ---- abuse limits (docs/security.md) --------------------------------------------------------
    const limits = this.sourceLimits;
    new Counter({
      name: METRIC.rateLimited,
      help: 'Requests this replica refused under a per-source-address limit: enroll (HTTP 429), device_auth_http (HTTP 429), device_auth_mqtt (CONNACK 3).',
      labelNames: ['limit'],
      registers,
      collect(this: Counter<'limit'>) {
        this.reset();
        for (const [limit, count] of limits.limitedCounts()) this.inc({ limit }, count);
      },
    });
    new Counter({
      name: METRIC.rateLimitStoreErrors,
      help: "Rate-limit checks the shared store (Redis, REDIS_URL) could not answer; each was answered from this replica's own buckets instead.",
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(limits.storeErrors);
      },
    });
    const refusals = this.refusalAudit;
    new Counter({
      name: METRIC.auditRefusalsDropped,
      help: 'Refused API calls (401/403) not written to the audit log because their source or this replica was over AUDIT_REFUSALS_*.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(refusals.dropped);
      },
    });

    // ---- HTTP ------------------------------------------------------------------------------------
    this.httpDuration = new Histogram({
      name: METRIC.httpDuration,
      help: 'HTTP request durations by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
  }

  onModuleInit(): void {
    this.reportIngest.onReportsApplied((reports) => this.countOutcomes(reports));
  }

  /** Text exposition format (prom-client renders it; collect() callbacks run first). */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Counts terminal reports about the device's current assignment once each: a report for an
   * older revision (device catching up) is not an outcome of anything still in flight.
   */
  countOutcomes(reports: readonly AppliedReport[]): void {
    for (const report of reports) {
      if (!report.currentAssignment || !isTerminalUpdateState(report.state)) continue;
      this.updateOutcomes.inc({ model: report.model, state: report.state, failure_code: report.failureCode ?? 'none' });
    }
  }

  private async fleetSnapshot(): Promise<FleetSnapshot | undefined> {
    try {
      return await this.fleet.get();
    } catch {
      return this.fleet.last();
    }
  }
}

function snakeCase(text: string): string {
  return text.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** An admission bound (infra/admission) as a gauge of {in progress, peak, limit} and a counter of refusals. */
function exportAdmission(
  registers: Registry[],
  bound: AdmissionBound,
  inProgressKind: string,
  names: { gauge: string; gaugeHelp: string; refused: string; refusedHelp: string },
): void {
  new Gauge({
    name: names.gauge,
    help: names.gaugeHelp,
    labelNames: ['kind'],
    registers,
    collect(this: Gauge<'kind'>) {
      this.set({ kind: inProgressKind }, bound.pending);
      this.set({ kind: 'peak' }, bound.peak);
      this.set({ kind: 'limit' }, bound.maxPending);
    },
  });
  new Counter({
    name: names.refused,
    help: names.refusedHelp,
    registers,
    collect(this: Counter) {
      this.reset();
      this.inc(bound.refusedBusy);
    },
  });
}
