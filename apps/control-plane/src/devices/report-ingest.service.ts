import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  decodePayload,
  type FailureCode,
  type InventoryMessage,
  inventoryMessageSchema,
  parseDeviceTopic,
  topics,
  type UpdateReport,
  updateReportSchema,
  type UpdateState,
} from '@fleetline/protocol';
import { type InboundMessage, MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { DeviceIngestMetrics } from './device-ingest-metrics.js';
import { DeviceModelsRepository } from './device-models.repository.js';
import { DevicesRepository } from './devices.repository.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { type IncomingReport, planReportBatch, reportAppliesToAssignment } from './report-ordering.js';

/** A report that changed device_models, for in-process listeners (the rollout engine wakes early on them). */
export interface AppliedReport {
  deviceId: string;
  model: string;
  version: string;
  revision: number;
  state: UpdateState;
  activeVersion: string | null;
  previousVersion: string | null;
  failureCode: FailureCode | null;
  rolloutId: string | null;
  /** False when the report is about an older revision than the current assignment (only active/previous were updated). */
  currentAssignment: boolean;
  at: string;
}

const MAX_BATCH = 1000;
const FLUSH_EVERY_MS = 100;
/** Beyond this many buffered messages (database far behind), new ones are dropped and logged; QoS1 redelivery and the agent's outbox resend them. */
const MAX_BUFFERED = 100_000;

/**
 * Ingests `reported` and `inventory` messages from the whole fleet. Each payload is decoded with
 * the protocol schema before anything else; bad ones are dropped, logged (rate-limited) and
 * counted in DeviceIngestMetrics. Good ones are buffered and applied in set-based batches (up to
 * MAX_BATCH messages or every FLUSH_EVERY_MS) by the ordering rules in report-ordering.ts.
 */
@Injectable()
export class ReportIngestService implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('ReportIngest');
  private readonly warn = new RateLimitedLog(this.logger);
  private reports: IncomingReport[] = [];
  private inventories = new Map<string, { seq: number; inventory: InventoryMessage['inventory']; at: string }>();
  private inventoryCount = 0;
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private readonly listeners: ((reports: AppliedReport[]) => void)[] = [];

  constructor(
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly deviceModels: DeviceModelsRepository,
    private readonly devices: DevicesRepository,
    readonly metrics: DeviceIngestMetrics,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.gateway.subscribe(topics.fleetFilter('reported'), (m) => this.onReported(m));
    await this.gateway.subscribe(topics.fleetFilter('inventory'), (m) => this.onInventory(m));
    this.timer = setInterval(() => {
      if (!this.flushing) void this.flush();
    }, FLUSH_EVERY_MS);
    this.timer.unref();
  }

  onReportsApplied(listener: (reports: AppliedReport[]) => void): void {
    this.listeners.push(listener);
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
  }

  /** Applies everything buffered so far (also used on shutdown). Flushes never overlap. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.reports.length === 0 && this.inventories.size === 0) return;
    this.flushing = this.flushOnce().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private onReported(message: InboundMessage): void {
    const deviceId = this.deviceIdOf(message, 'reported');
    if (deviceId === undefined) return;
    const decoded = decodePayload(updateReportSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.record('reported', 'malformed');
      this.warn.warn(`reported:${deviceId}`, `dropped malformed report from ${deviceId}: ${decoded.error}`);
      return;
    }
    if (this.reports.length + this.inventoryCount >= MAX_BUFFERED) {
      this.warn.warn('overflow', `report buffer full (${MAX_BUFFERED}); dropping reports until the database catches up`);
      return;
    }
    this.reports.push({ deviceId, report: decoded.value });
    if (this.reports.length >= MAX_BATCH && !this.flushing) void this.flush();
  }

  private onInventory(message: InboundMessage): void {
    const deviceId = this.deviceIdOf(message, 'inventory');
    if (deviceId === undefined) return;
    const decoded = decodePayload(inventoryMessageSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.record('inventory', 'malformed');
      this.warn.warn(`inventory:${deviceId}`, `dropped malformed inventory from ${deviceId}: ${decoded.error}`);
      return;
    }
    const { seq, inventory, at } = decoded.value;
    const current = this.inventories.get(deviceId);
    this.inventoryCount++;
    if (current && current.seq >= seq) {
      this.metrics.record('inventory', current.seq === seq ? 'duplicate' : 'stale');
      return;
    }
    this.inventories.set(deviceId, { seq, inventory, at });
    if (this.inventories.size >= MAX_BATCH && !this.flushing) void this.flush();
  }

  /** Device id from the topic; an empty payload is a cleared retained message (MQTT 3.1.1 §3.3.1.3), not a report. */
  private deviceIdOf(message: InboundMessage, stream: 'reported' | 'inventory'): string | undefined {
    if (message.payload.length === 0) return undefined;
    const parsed = parseDeviceTopic(message.topic);
    if (!parsed || parsed.kind !== stream) {
      this.metrics.record(stream, 'malformed');
      this.warn.warn(`topic:${stream}`, `dropped message on unexpected topic ${message.topic}`);
      return undefined;
    }
    return parsed.deviceId;
  }

  private async flushOnce(): Promise<void> {
    while (this.reports.length > 0) {
      const batch = this.reports.splice(0, MAX_BATCH);
      try {
        await this.applyReports(batch);
      } catch (err) {
        // Dropped, not retried: a database error here is not the device's fault, but keeping the
        // batch could grow without bound. The agent republishes unacknowledged reports on reconnect.
        this.logger.error(`applying ${batch.length} reports failed: ${String(err)}`);
      }
    }
    if (this.inventories.size > 0) {
      const items = [...this.inventories.entries()].map(([deviceId, v]) => ({ deviceId, ...v }));
      this.inventories = new Map();
      this.inventoryCount = 0;
      try {
        await this.applyInventories(items);
      } catch (err) {
        this.logger.error(`applying ${items.length} inventories failed: ${String(err)}`);
      }
    }
  }

  private async applyReports(batch: IncomingReport[]): Promise<void> {
    const ids = [...new Set(batch.map((b) => b.deviceId))].sort();
    const { plan, applied } = await this.deviceModels.applyReports(
      batch.map((b) => ({ deviceId: b.deviceId, model: b.report.model })),
      (floors) => planReportBatch(batch, floors),
    );
    this.metrics.record('reported', 'accepted', plan.accepted);
    this.metrics.record('reported', 'duplicate', plan.duplicate);
    this.metrics.record('reported', 'stale', plan.stale);
    this.metrics.record('reported', 'unknownDevice', plan.unknownDevice);
    if (plan.unknownDevice > 0) {
      const known = new Set(plan.apply.map((a) => a.deviceId));
      const unknown = ids.filter((id) => !known.has(id));
      this.warn.warn(
        'reported:unknown',
        `dropped ${plan.unknownDevice} report(s) from unknown or decommissioned device(s), e.g. ${unknown.slice(0, 3).join(', ')}`,
      );
    }
    if (this.listeners.length === 0 || applied.length === 0) return;
    const desired = new Map(applied.map((a) => [`${a.deviceId}\u0000${a.model}`, a.desiredRevision]));
    const out: AppliedReport[] = plan.apply.map(({ deviceId, report }) => toApplied(deviceId, report, desired.get(`${deviceId}\u0000${report.model}`) ?? 0));
    for (const listener of this.listeners) {
      try {
        listener(out);
      } catch (err) {
        this.logger.error(`report listener threw: ${String(err)}`);
      }
    }
  }

  private async applyInventories(items: { deviceId: string; seq: number; inventory: InventoryMessage['inventory']; at: string }[]): Promise<void> {
    const live = await this.devices.liveIds(items.map((i) => i.deviceId));
    const known = items.filter((i) => live.has(i.deviceId));
    const updated = await this.devices.applyInventory(known);
    this.metrics.record('inventory', 'unknownDevice', items.length - known.length);
    this.metrics.record('inventory', 'accepted', updated.size);
    // Not updated although live: seq <= inventory_seq (a redelivered or older retained inventory).
    this.metrics.record('inventory', 'stale', known.length - updated.size);
    if (items.length > known.length)
      this.warn.warn('inventory:unknown', `dropped ${items.length - known.length} inventory message(s) from unknown or decommissioned device(s)`);
  }
}

function toApplied(deviceId: string, report: UpdateReport, desiredRevision: number): AppliedReport {
  return {
    deviceId,
    model: report.model,
    version: report.version,
    revision: report.revision,
    state: report.state,
    activeVersion: report.activeVersion,
    previousVersion: report.previousVersion,
    failureCode: report.failure?.code ?? null,
    rolloutId: report.rolloutId ?? null,
    currentAssignment: reportAppliesToAssignment(report.revision, desiredRevision),
    at: report.at,
  };
}
