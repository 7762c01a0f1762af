import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit, Optional } from '@nestjs/common';
import { decodePayload, parseDeviceTopic, type TelemetryMessage, telemetryMessageSchema, topics } from '@fleetline/protocol';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
import { type InboundMessage, MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { RateLimitedLog } from '../../infra/logging/rate-limited-log.js';
import { BatcherClosedError, TelemetryBatcher, type TelemetryBatcherOptions } from './telemetry-batcher.js';
import { TelemetryIngestMetrics } from './telemetry-ingest.metrics.js';
import { ShadowIngestRepository } from './shadow-ingest.repository.js';
import { type IngestSample, TelemetryIngestRepository } from './telemetry-ingest.repository.js';
import { acceptedWindow } from '../maintenance/telemetry-partitions.js';
import {
  boundsProblem,
  DEFAULT_TELEMETRY_LIMITS,
  type Neighbours,
  neighboursIn,
  sequenceProblem,
  type StreamSample,
  type TelemetryRejectReason,
} from './telemetry-bounds.js';
import type { TelemetryLimits } from '../../infra/config/config.schema.js';

const INT32_MAX = 2_147_483_647;
/** Longest interval one aggregate may cover; agents close an interval every minute by default. */
const MAX_INTERVAL_MS = 86_400_000;
/** Upper bound of latencySumMs per inference: one hour. */
const MAX_LATENCY_PER_INFERENCE_MS = 3_600_000;

/**
 * What the protocol schema lets through but the store cannot hold or would be skewed by: checked
 * before queueing so that one broken agent never makes a whole batch fail.
 */
export function storageProblem(m: TelemetryMessage, start: number, end: number): string | undefined {
  if (end < start) return 'intervalEnd before intervalStart';
  if (end - start > MAX_INTERVAL_MS) return 'interval longer than a day';
  // Columns are 32-bit where a sample's counters are: a larger value is a broken agent.
  if (m.count > INT32_MAX || m.errors > INT32_MAX || m.latencyBuckets.some((b) => b > INT32_MAX)) return 'counter out of range';
  if (m.latencySumMs > Math.max(m.count, 1) * MAX_LATENCY_PER_INFERENCE_MS) return 'latencySumMs out of range';
  // PostgreSQL text and jsonb cannot hold U+0000 (jsonb refuses the \u0000 escape).
  for (const label in m.predictions) if (label.includes('\u0000')) return 'prediction label contains U+0000';
  return undefined;
}

function describeInterval(s: StreamSample): string {
  return `from ${new Date(s.intervalStart).toISOString()} to ${new Date(s.intervalEnd).toISOString()}`;
}

/** The neighbours a refused sample was checked against, for the log. */
function describeNeighbours({ last, next }: Neighbours): string {
  const before = last ? `seq ${last.seq} ending ${new Date(last.intervalEnd).toISOString()}` : 'nothing';
  const after = next ? `seq ${next.seq} starting ${new Date(next.intervalStart).toISOString()}` : 'nothing';
  return `between ${before} and ${after}`;
}

/** PostgreSQL data exception (22xxx) or integrity violation (23xxx): the rows are at fault, not the connection. */
function isDataError(err: unknown): boolean {
  const e = err as { driverError?: { code?: unknown }; code?: unknown };
  const code = e.driverError?.code ?? e.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/** Deadlock (40P01) or serialization failure (40001): two batches met on the same rows; trying again succeeds. */
function isRetryable(err: unknown): boolean {
  const e = err as { driverError?: { code?: unknown }; code?: unknown };
  const code = e.driverError?.code ?? e.code;
  return code === '40P01' || code === '40001';
}

/** Injection token for batching limits (tests and benchmarks may tune them). */
export const TELEMETRY_BATCH_OPTIONS = Symbol('TELEMETRY_BATCH_OPTIONS');

export const DEFAULT_TELEMETRY_BATCH_OPTIONS: TelemetryBatcherOptions = {
  maxBatch: 5_000,
  // Ten full batches: about 10 MB of decoded samples at worst; past it the broker stops reading from devices.
  maxQueue: 50_000,
  // Every sample's PUBACK waits for its batch, and an agent sends its outbox one message at a time:
  // the deadline is latency per message, not throughput (under load batches fill while one is written).
  maxDelayMs: 10,
  // The database works on one batch while the next is decoded and encoded here (profiled under
  // test/bench/telemetry-ingest.bench.mjs: with one writer the control plane sat idle for most of the run).
  writers: 2,
};

/**
 * MQTT -> database pipeline for device telemetry. Every payload is decoded with the protocol
 * schema before anything else happens; good samples are batched in memory (bounded) and written
 * set-based by TelemetryIngestRepository.
 *
 * Commit before ack: handle() answers a promise for a good sample that resolves once the batch
 * holding it has committed, and rejects when the database could not store it; the gateway holds
 * the device's PUBACK until then (MQTT 3.1.1 §4.3.2), so a crash or a database outage loses
 * nothing the device was told is stored: it keeps the message in its outbox and resends it.
 * Samples that can never be stored (malformed, outside the window, a row the database refuses)
 * are counted and acknowledged, or the device would resend them for ever. So are samples refused
 * by the bounds (telemetry-bounds.ts: rate, interval, counters, future, seq jump, overlap): a
 * resend would be refused again, so holding the PUBACK would only block the device's outbox
 * behind a message that can never be stored. They are logged (rate-limited) and counted in
 * `rejected` by reason.
 */
@Injectable()
export class TelemetryIngestService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('TelemetryIngest');
  private readonly badInput = new RateLimitedLog(this.logger);
  private readonly writeErrors = new RateLimitedLog(this.logger);
  private readonly batcher: TelemetryBatcher<IngestSample>;
  private withCohorts = false;
  private readonly limits: TelemetryLimits;
  private cachedWindow: { at: number; from: Date; to: Date } | undefined;

  constructor(
    private readonly gateway: MqttGateway,
    private readonly repository: TelemetryIngestRepository,
    readonly metrics: TelemetryIngestMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(TELEMETRY_BATCH_OPTIONS) private readonly options: TelemetryBatcherOptions,
    @Optional() private readonly shadow?: ShadowIngestRepository,
  ) {
    this.limits = config.telemetryLimits ?? DEFAULT_TELEMETRY_LIMITS;
    this.batcher = new TelemetryBatcher(
      options,
      (batch) => this.write(batch),
      (err, failed) => {
        this.metrics.writeFailed += failed;
        this.writeErrors.warn(
          'write',
          `telemetry batch of ${failed} samples not stored (not acknowledged; devices resend): ${err instanceof Error ? err.message : String(err)}`,
        );
      },
    );
  }

  async onModuleInit(): Promise<void> {
    this.withCohorts = await this.repository.rolloutTablesPresent();
    if (!this.withCohorts) this.logger.warn('rollout tables not found: telemetry is labelled with the fleet cohort only');
    await this.gateway.subscribe(topics.fleetFilter('telemetry'), (message) => this.handle(message));
  }

  /** Writes what is queued before the database goes away (shutdown order: onModuleDestroy runs before the DataSource closes). */
  async onModuleDestroy(): Promise<void> {
    await this.batcher.close();
    this.metrics.queued = this.batcher.size;
  }

  /** Writes everything queued so far (tests, benchmarks and shutdown). */
  async flush(): Promise<void> {
    await this.batcher.flush();
    this.metrics.queued = this.batcher.size;
  }

  /**
   * Broker callback. Undefined: nothing to store (dropped and counted), acknowledge at once. A
   * promise: resolves when the sample is committed, rejects when it is not stored.
   */
  handle(message: InboundMessage): Promise<void> | undefined {
    this.metrics.received++;
    const topic = parseDeviceTopic(message.topic);
    if (!topic || topic.kind !== 'telemetry') {
      this.metrics.malformed++;
      this.badInput.warn('topic', `telemetry on unexpected topic ${message.topic.slice(0, 200)} dropped`);
      return;
    }
    const decoded = decodePayload(telemetryMessageSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.malformed++;
      this.badInput.warn(topic.deviceId, `malformed telemetry from ${topic.deviceId} dropped: ${decoded.error}`);
      return;
    }
    const m = decoded.value;
    const start = Date.parse(m.intervalStart);
    const end = Date.parse(m.intervalEnd);
    const problem = storageProblem(m, start, end);
    if (problem) {
      this.metrics.malformed++;
      this.badInput.warn(topic.deviceId, `malformed telemetry from ${topic.deviceId} dropped: ${problem}`);
      return;
    }
    const rejection = boundsProblem(m, start, end, Date.now(), this.limits);
    if (rejection) {
      this.reject(rejection.reason, `${topic.deviceId}: ${rejection.detail}`);
      return;
    }
    const window = this.window();
    if (end < window.from.getTime() || end > window.to.getTime()) {
      this.metrics.outOfWindow++;
      this.badInput.warn(topic.deviceId, `telemetry from ${topic.deviceId} for ${m.intervalEnd} is outside the stored window; dropped`);
      return;
    }
    if (this.batcher.isClosed) {
      this.metrics.droppedShutdown++;
      return Promise.reject(new BatcherClosedError());
    }
    if (this.batcher.size >= this.options.maxQueue) this.metrics.waitedForRoom++;
    const committed = this.batcher.submit({ deviceId: topic.deviceId, message: m });
    this.metrics.queued = this.batcher.size;
    return committed.catch((err: unknown) => {
      if (err instanceof BatcherClosedError) this.metrics.droppedShutdown++;
      throw err;
    });
  }

  /** `detail` names the device when the refusal is of one known sample. */
  private reject(reason: TelemetryRejectReason, detail: string, n = 1): void {
    this.metrics.rejected[reason] += n;
    this.badInput.warn(reason, `telemetry refused (${reason}): ${detail}; acknowledged and dropped`);
  }

  /**
   * Writes a batch; when the database refuses it for its data (SQLSTATE classes 22 and 23), the
   * batch is split in halves and retried so that one bad sample costs only itself, not the
   * samples of thousands of other devices (the refused one is counted and acknowledged: resending
   * it could never succeed). Other errors (database unavailable) fail the batch: none of its
   * messages is acknowledged, so their devices resend them.
   */
  private async writeIsolating(samples: IngestSample[]): Promise<void> {
    if (samples.length === 0) return;
    try {
      const result = await this.repository.writeBatch(samples, this.withCohorts, this.limits).catch((err: unknown) => {
        // Concurrent writers (two here, more across replicas) can meet on a redelivered sample's key.
        if (isRetryable(err)) return this.repository.writeBatch(samples, this.withCohorts, this.limits);
        throw err;
      });
      this.metrics.unknownDevice += samples.length - result.known;
      this.metrics.duplicate += result.known - result.inserted - result.rejected.seq - result.rejected.overlap;
      const example = result.rejectedExample ? ` (${result.rejectedExample})` : '';
      if (result.rejected.seq > 0)
        this.reject('seq', `${result.rejected.seq} sample(s) of the batch jump too far past the seq stored before them${example}`, result.rejected.seq);
      if (result.rejected.overlap > 0)
        this.reject('overlap', `${result.rejected.overlap} sample(s) of the batch overlap an interval already stored${example}`, result.rejected.overlap);
      this.metrics.accepted += result.inserted;
      this.metrics.agentDropped += result.agentDropped;
      if (this.shadow && this.withCohorts) {
        // After the samples: a shadow block is stored only beside its stored sample (ShadowIngestRepository).
        const offered = samples.filter((s) => s.message.shadow !== undefined).length;
        if (offered > 0) {
          const stored = await this.shadow.writeShadow(samples);
          this.metrics.shadowAccepted += stored;
          this.metrics.shadowLeftOut += offered - stored;
        }
      }
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (samples.length === 1) {
        // Exported with the malformed ones (/metrics): like them, the store cannot hold it.
        this.metrics.refused++;
        this.metrics.malformed++;
        this.writeErrors.warn(
          'write',
          `telemetry sample from ${samples[0]!.deviceId} refused by the database: ${err instanceof Error ? err.message : String(err)}`,
        );
        return;
      }
      const half = Math.ceil(samples.length / 2);
      await this.writeIsolating(samples.slice(0, half));
      await this.writeIsolating(samples.slice(half));
    }
  }

  /** The accepted interval window, recomputed at most once a second (it moves by days, not milliseconds). */
  private window(): { from: Date; to: Date } {
    const now = Date.now();
    if (!this.cachedWindow || now - this.cachedWindow.at > 1000) {
      this.cachedWindow = { at: now, ...acceptedWindow(new Date(now), this.config.telemetryRetentionDays) };
    }
    return this.cachedWindow;
  }

  private async write(batch: IngestSample[]): Promise<void> {
    const started = performance.now();
    // The same message twice in one batch (a quick QoS1 redelivery) is a duplicate too.
    const seen = new Set<string>();
    const unique: IngestSample[] = [];
    // The SQL checks each sample against what is stored; between samples of one batch the same rule runs here,
    // against the batch's samples of the stream in stream order (a late one may arrive after a later one).
    const inBatch = new Map<string, StreamSample[]>();
    let duplicates = 0;
    for (const s of batch) {
      const key = `${s.deviceId}\u0000${s.message.seq}\u0000${s.message.intervalEnd}`;
      if (seen.has(key)) {
        duplicates++;
        continue;
      }
      const stream = `${s.deviceId}\u0000${s.message.model}\u0000${s.message.version}`;
      const sample = { seq: s.message.seq, intervalStart: Date.parse(s.message.intervalStart), intervalEnd: Date.parse(s.message.intervalEnd) };
      let sorted = inBatch.get(stream);
      if (!sorted) inBatch.set(stream, (sorted = []));
      const around = neighboursIn(sorted, sample);
      const problem = sequenceProblem(sample, around, this.limits.maxSeqGap);
      if (problem) {
        this.reject(
          problem,
          `${s.deviceId} seq ${s.message.seq} of ${s.message.model}@${s.message.version} ${describeInterval(sample)} ${describeNeighbours(around)} of the same batch`,
        );
        continue;
      }
      sorted.splice(around.index, 0, sample);
      seen.add(key);
      unique.push(s);
    }
    this.metrics.duplicate += duplicates;
    await this.writeIsolating(unique);
    this.metrics.batches++;
    this.metrics.lastBatchSize = batch.length;
    this.metrics.lastBatchMs = Math.round((performance.now() - started) * 10) / 10;
    this.metrics.queued = this.batcher.size;
  }
}
