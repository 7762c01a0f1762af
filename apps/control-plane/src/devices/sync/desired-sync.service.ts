import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { type ArtifactRef, type Command, encodePayload, PROTOCOL_VERSION, topics } from '@fleetline/protocol';
import { MqttGateway, type OutboundMessage } from '../../infra/mqtt/mqtt-gateway.js';
import { ModelCatalog } from '../model-catalog.js';
import { desiredMessage, type DesiredStateRow } from './desired-messages.js';
import { DesiredSyncRepository } from './desired-sync.repository.js';

/** Hellos answered per query. */
const BATCH = 500;
/** How long a hello waits for others to share its query (a storm of hellos arrives spread over many turns). */
const LINGER_MS = 20;
/** A failed batch is retried this many times (database restarting), then the device waits for its next hello. */
const MAX_ATTEMPTS = 5;
/** A version's artifacts never change once uploaded; cached briefly so a reconnect storm asks once per version. */
const ARTIFACT_TTL_MS = 30_000;

export interface SyncCounters {
  /** Devices answered. */
  devices: number;
  /** Desired-state and cleared messages sent in answers. */
  messages: number;
  /** Batches that failed (and were retried or given up). */
  failures: number;
}

/**
 * Answers a device's hello (its `presence` online message, sent once its subscription is in
 * place) with every desired state the database holds for it. This is what makes the database the
 * only source of truth: nothing depends on a broker keeping retained messages or sessions, and a
 * device that was offline, or whose control plane restarted, is brought up to date on connect.
 *
 * Hellos are batched: a fleet reconnecting at once costs one query per BATCH devices and one
 * artifact lookup per version, so the cost per device does not grow with the fleet.
 */
@Injectable()
export class DesiredSyncService implements OnModuleDestroy {
  private readonly logger = new Logger('DesiredSync');
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly artifacts = new Map<string, { refs: Promise<ArtifactRef[]>; until: number }>();
  private stopped = false;
  readonly counters: SyncCounters = { devices: 0, messages: 0, failures: 0 };

  constructor(
    private readonly repository: DesiredSyncRepository,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly catalog: ModelCatalog,
  ) {}

  /** A device said hello: send it what it should run, soon. */
  request(deviceId: string): void {
    if (this.stopped) return;
    this.pending.set(deviceId, this.pending.get(deviceId) ?? 0);
    this.schedule(this.pending.size >= BATCH ? 0 : LINGER_MS);
  }

  /** Resolves when every hello received so far has been answered (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.pending.size > 0 || this.running || this.timer) {
      if (this.running) await this.running;
      else if (this.pending.size > 0) this.flushNow();
      else await new Promise((resolve) => setTimeout(resolve, LINGER_MS));
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.drain().catch(() => undefined);
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.running) return; // the running flush picks the rest up when it ends
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flushNow(), delayMs);
    this.timer.unref();
  }

  private flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.pending.size === 0) return;
    this.running = this.flushAll().finally(() => {
      this.running = undefined;
      if (this.pending.size > 0) this.schedule(0);
    });
  }

  private async flushAll(): Promise<void> {
    while (this.pending.size > 0 && !this.stopped) {
      const batch = [...this.pending.entries()].slice(0, BATCH);
      for (const [id] of batch) this.pending.delete(id);
      try {
        await this.answer(batch.map(([id]) => id));
      } catch (err) {
        this.counters.failures++;
        const retry = batch.filter(([, attempts]) => attempts + 1 < MAX_ATTEMPTS);
        this.logger.error(`answering ${batch.length} hello(s) failed (${retry.length} retried): ${String(err)}`);
        for (const [id, attempts] of retry) if (!this.pending.has(id)) this.pending.set(id, attempts + 1);
        await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      }
    }
  }

  private async answer(deviceIds: string[]): Promise<void> {
    const [rows, uninventoried] = await Promise.all([this.repository.desiredStates(deviceIds), this.repository.withoutInventory(deviceIds)]);
    const messages: OutboundMessage[] = uninventoried.map((deviceId) => ({
      topic: topics.commands(deviceId),
      payload: encodePayload({ v: PROTOCOL_VERSION, type: 'report-inventory' } satisfies Command),
      qos: 1,
      retain: false,
    }));
    for (const row of rows) {
      if (row.version === null) {
        messages.push(desiredMessage(row, []));
        continue;
      }
      try {
        messages.push(desiredMessage(row, await this.artifactRefs(row)));
      } catch (err) {
        // A version deleted under an assignment: the other models of the batch still go out.
        this.logger.warn(`no artifacts for ${row.model}@${row.version} (assigned to ${row.deviceId}): ${String(err)}`);
      }
    }
    await this.gateway.publishMany(messages);
    this.counters.devices += deviceIds.length;
    this.counters.messages += messages.length;
  }

  private artifactRefs(row: DesiredStateRow): Promise<ArtifactRef[]> {
    const key = `${row.model}@${row.version!}`;
    const now = Date.now();
    const cached = this.artifacts.get(key);
    if (cached && cached.until > now) return cached.refs;
    const refs = this.catalog.artifactRefs(row.model, row.version!);
    // A failed lookup must not be cached.
    refs.catch(() => this.artifacts.delete(key));
    this.artifacts.set(key, { refs, until: now + ARTIFACT_TTL_MS });
    if (this.artifacts.size > 10_000) this.artifacts.delete(this.artifacts.keys().next().value!);
    return refs;
  }
}
