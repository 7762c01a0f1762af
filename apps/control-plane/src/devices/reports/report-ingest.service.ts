import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  decodePayload,
  type FailureCode,
  type InventoryMessage,
  inventoryMessageSchema,
  parseDeviceTopic,
  type ReportState,
  topics,
  type UpdateReport,
  updateReportSchema,
} from '@fleetline/protocol';
import { type InboundMessage, MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { DeviceIngestMetrics } from './device-ingest-metrics.js';
import { DeviceModelsRepository } from '../device-models.repository.js';
import { DevicesRepository } from '../devices.repository.js';
import { RateLimitedLog } from '../../infra/logging/rate-limited-log.js';
import { type IncomingReport, planReportBatch, reportAppliesToAssignment } from './report-ordering.js';

/** A report that changed device_models, for in-process listeners (the rollout engine wakes early on them). */
export interface AppliedReport {
  deviceId: string;
  model: string;
  version: string;
  revision: number;
  state: ReportState;
  activeVersion: string | null;
  previousVersion: string | null;
  failureCode: FailureCode | null;
  failureMessage: string | null;
  rolloutId: string | null;
  /** False when the report is about an older revision than the current assignment (only active/previous were updated). */
  currentAssignment: boolean;
  at: string;
}

const MAX_BATCH = 1000;
/**
 * Longest a message waits for its batch. Every PUBACK waits for the commit and an agent sends its
 * outbox one message at a time, so this is per-message latency; under load batches fill meanwhile.
 */
const FLUSH_EVERY_MS = 10;
/** Beyond this many buffered messages (database far behind), handlers wait for room: the broker stops reading from those devices. */
const MAX_BUFFERED = 100_000;

/** A message's promise: settled when the flush holding it has committed (or failed). */
interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Raised for messages that arrive once shutdown began: not taken, so not acknowledged. */
class IngestClosedError extends Error {
  constructor() {
    super('report ingest is shutting down');
  }
}

/** PostgreSQL data exception (22xxx) or integrity violation (23xxx): the rows are at fault, not the connection. */
function isDataError(err: unknown): boolean {
  const e = err as { driverError?: { code?: unknown }; code?: unknown };
  const code = e.driverError?.code ?? e.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/**
 * Ingests `reported` and `inventory` messages from the whole fleet. Each payload is decoded with
 * the protocol schema before anything else; bad ones are dropped, logged (rate-limited) and
 * counted in DeviceIngestMetrics. Good ones are buffered and applied in set-based batches (up to
 * MAX_BATCH messages or every FLUSH_EVERY_MS) by the ordering rules in report-ordering.ts.
 *
 * Commit before ack: the handlers answer a promise that resolves once the flush holding the
 * message has committed and rejects when it could not be stored; the gateway holds the device's
 * PUBACK until then (MQTT 3.1.1 §4.3.2), so the agent keeps an unstored report in its outbox and
 * resends it. A full buffer makes handlers wait for room instead of dropping.
 */
@Injectable()
export class ReportIngestService implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('ReportIngest');
  private readonly warn = new RateLimitedLog(this.logger);
  private reports: IncomingReport[] = [];
  private inventories = new Map<string, { seq: number; inventory: InventoryMessage['inventory']; at: string }>();
  private inventoryCount = 0;
  private waiters: Waiter[] = [];
  /** Messages taken by the flush under way (still in memory, counted against MAX_BUFFERED). */
  private inFlight = 0;
  private roomWaiters: Waiter[] = [];
  private closed = false;
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
      if (!this.flushing && this.waiters.length > 0) void this.flush();
    }, FLUSH_EVERY_MS);
    this.timer.unref();
  }

  onReportsApplied(listener: (reports: AppliedReport[]) => void): void {
    this.listeners.push(listener);
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    const waiting = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiting) w.reject(new IngestClosedError());
    await this.flush();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
  }

  /** Applies everything buffered so far (also used on shutdown). Flushes never overlap. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.waiters.length === 0) return;
    this.flushing = this.flushOnce().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private onReported(message: InboundMessage): Promise<void> | undefined {
    const deviceId = this.deviceIdOf(message, 'reported');
    if (deviceId === undefined) return undefined;
    const decoded = decodePayload(updateReportSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.record('reported', 'malformed');
      this.warn.warn(`reported:${deviceId}`, `dropped malformed report from ${deviceId}: ${decoded.error}`);
      return undefined;
    }
    return this.take(() => {
      this.reports.push({ deviceId, report: decoded.value });
      return this.reports.length;
    });
  }

  private onInventory(message: InboundMessage): Promise<void> | undefined {
    const deviceId = this.deviceIdOf(message, 'inventory');
    if (deviceId === undefined) return undefined;
    const decoded = decodePayload(inventoryMessageSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.record('inventory', 'malformed');
      this.warn.warn(`inventory:${deviceId}`, `dropped malformed inventory from ${deviceId}: ${decoded.error}`);
      return undefined;
    }
    const { seq, inventory, at } = decoded.value;
    return this.take(() => {
      const current = this.inventories.get(deviceId);
      this.inventoryCount++;
      if (current && current.seq >= seq) {
        // The newer one buffered is what gets stored; this one is acknowledged with it.
        this.metrics.record('inventory', current.seq === seq ? 'duplicate' : 'stale');
      } else {
        this.inventories.set(deviceId, { seq, inventory, at });
      }
      return this.inventories.size;
    });
  }

  private get buffered(): number {
    return this.reports.length + this.inventoryCount + this.inFlight;
  }

  /**
   * Buffers one message (`add` answers the size of the buffer it went to) and answers a promise
   * settled by the flush that stores it. Waits while the buffer is full.
   */
  private async take(add: () => number): Promise<void> {
    while (!this.closed && this.buffered >= MAX_BUFFERED) {
      this.warn.warn('overflow', `report buffer full (${MAX_BUFFERED}); devices wait until the database catches up`);
      await new Promise<void>((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
    }
    if (this.closed) throw new IngestClosedError();
    const stored = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (add() >= MAX_BATCH && !this.flushing) void this.flush();
    return stored;
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

  /**
   * Applies what is buffered now, in set-based batches, and settles the messages' promises: all
   * resolved when everything committed, all rejected when any batch failed (their devices resend;
   * re-applying a committed report is a duplicate by seq and changes nothing).
   */
  private async flushOnce(): Promise<void> {
    const reports = this.reports;
    const inventories = this.inventories;
    const waiters = this.waiters;
    this.reports = [];
    this.inventories = new Map();
    this.waiters = [];
    this.inFlight = reports.length + this.inventoryCount;
    this.inventoryCount = 0;
    let failure: { err: unknown } | undefined;
    for (let i = 0; i < reports.length; i += MAX_BATCH) {
      const batch = reports.slice(i, i + MAX_BATCH);
      try {
        await this.applyReportsIsolating(batch);
      } catch (err) {
        failure ??= { err };
        this.logger.error(`applying ${batch.length} reports failed (not acknowledged; devices resend): ${String(err)}`);
      }
    }
    if (inventories.size > 0) {
      const items = [...inventories.entries()].map(([deviceId, v]) => ({ deviceId, ...v }));
      try {
        await this.applyInventories(items);
      } catch (err) {
        failure ??= { err };
        this.logger.error(`applying ${items.length} inventories failed (not acknowledged; devices resend): ${String(err)}`);
      }
    }
    this.inFlight = 0;
    if (failure) for (const w of waiters) w.reject(failure.err);
    else for (const w of waiters) w.resolve();
    const room = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of room) w.resolve();
  }

  /**
   * A batch the database refuses for its data (SQLSTATE 22/23) is split in halves so one bad
   * report costs only itself; that one is counted as malformed and acknowledged (a resend could
   * never be stored). Any other error fails the flush.
   */
  private async applyReportsIsolating(batch: IncomingReport[]): Promise<void> {
    try {
      await this.applyReports(batch);
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (batch.length === 1) {
        this.metrics.record('reported', 'malformed');
        this.warn.warn('reported:refused', `report from ${batch[0]!.deviceId} refused by the database: ${String(err)}`);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.applyReportsIsolating(batch.slice(0, half));
      await this.applyReportsIsolating(batch.slice(half));
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
    failureMessage: report.failure?.message ?? null,
    rolloutId: report.rolloutId ?? null,
    currentAssignment: reportAppliesToAssignment(report.revision, desiredRevision),
    at: report.at,
  };
}
