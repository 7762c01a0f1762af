import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { decodePayload, parseDeviceTopic, presenceMessageSchema, topics } from '@fleetline/protocol';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
import { EmbeddedBrokerGateway } from '../../infra/mqtt/embedded-broker.gateway.js';
import { type InboundMessage, MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { DeviceIngestMetrics } from '../reports/device-ingest-metrics.js';
import { DevicesRepository } from '../devices.repository.js';
import { PresenceBuffer, presenceTime } from './presence-buffer.js';
import { RateLimitedLog } from '../../infra/logging/rate-limited-log.js';
import { DesiredSyncService } from '../sync/desired-sync.service.js';

const FLUSH_EVERY_MS = 300;
/** How often a clustered replica looks for replicas that died holding connections. */
const SWEEP_EVERY_MS = 10_000;

/**
 * Keeps devices.online / last_seen_at current, and answers every hello with the device's desired
 * states (DesiredSyncService).
 *
 * Where presence comes from:
 *  - embedded broker: its own connection events, each naming its session (replica + connection),
 *    are the only source; a device's `presence` online message is its hello and nothing more;
 *  - external broker: the devices' `presence` messages (online after subscribing, offline as last
 *    will), each naming the device's own per-connection session.
 * Events are buffered and written every FLUSH_EVERY_MS with one set-based UPDATE (the ordering rule
 * is in presence-buffer.ts). Nothing is retained anywhere.
 *
 * After a crash: a single embedded broker starts with nobody connected, so everything is offline; a
 * clustered replica marks offline only its own devices at start, and any replica marks offline the
 * devices of a replica that stopped heartbeating.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Presence');
  private readonly warn = new RateLimitedLog(this.logger);
  private readonly buffer = new PresenceBuffer();
  private readonly embedded: boolean;
  private timer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  /** Presence messages waiting for the flush that stores them: their PUBACK waits too. */
  private waiters: (() => void)[] = [];

  constructor(
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly devices: DevicesRepository,
    private readonly metrics: DeviceIngestMetrics,
    private readonly sync: DesiredSyncService,
  ) {
    this.embedded = gateway instanceof EmbeddedBrokerGateway;
  }

  async onModuleInit(): Promise<void> {
    const clustered = this.config.mqtt.kind === 'embedded' && this.config.mqtt.redisUrl !== undefined;
    if (this.embedded && !clustered) await this.devices.markAllOffline();
    if (clustered) {
      const swept = await this.devices.markReplicaOffline(this.config.replicaId);
      if (swept > 0) this.logger.log(`marked ${swept} device(s) of this replica's previous run offline`);
      this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
      this.sweepTimer.unref();
    }
    this.gateway.onConnectionEvent((event) =>
      this.buffer.add({ deviceId: event.clientId, online: event.online, at: event.at, session: event.session, replica: event.replica }),
    );
    await this.gateway.subscribe(topics.fleetFilter('presence'), (m) => this.onPresence(m));
    this.timer = setInterval(() => {
      if (!this.flushing) void this.flush();
    }, FLUSH_EVERY_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.sweepTimer);
    await this.flush();
  }

  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buffer.size === 0) return;
    this.flushing = this.flushOnce().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const { ids, online, at, session, replica } = this.buffer.drain();
    const waiters = this.waiters;
    this.waiters = [];
    try {
      await this.devices.applyPresence(ids, online, at, session, replica);
      for (const resolve of waiters) resolve();
    } catch (err) {
      // Still not stored: those messages stay unacknowledged until a later flush stores them.
      this.waiters.push(...waiters);
      this.logger.error(`recording presence of ${ids.length} device(s) failed: ${String(err)}`);
      // Put them back; anything that arrived meanwhile is ordered by the same rule (PresenceBuffer.add).
      ids.forEach((deviceId, i) => this.buffer.add({ deviceId, online: online[i]!, at: new Date(at[i]!), session: session[i]!, replica: replica[i]! }));
    }
  }

  /** Marks offline the devices of replicas that stopped heartbeating (crashed without a goodbye). */
  private async sweep(): Promise<void> {
    try {
      for (const dead of await this.gateway.deadReplicas()) {
        const n = await this.devices.markReplicaOffline(dead);
        this.logger.warn(`replica ${dead} stopped; marked its ${n} device(s) offline`);
        await this.gateway.forgetReplica(dead);
      }
    } catch (err) {
      this.logger.warn(`replica sweep failed: ${String(err)}`);
    }
  }

  /**
   * A device's presence message. In embedded mode it is only the hello (the broker's own connection
   * events are the presence), acknowledged at once. On an external broker it is the presence itself:
   * the answer (PUBACK) waits until the flush that stores it.
   */
  private onPresence(message: InboundMessage): void | Promise<void> {
    if (message.payload.length === 0) return; // nothing to say (an older agent clearing a retained message)
    const receivedAt = new Date();
    const parsed = parseDeviceTopic(message.topic);
    if (!parsed || parsed.kind !== 'presence') {
      this.metrics.record('presence', 'malformed');
      return;
    }
    const decoded = decodePayload(presenceMessageSchema, message.payload);
    if (!decoded.ok) {
      this.metrics.record('presence', 'malformed');
      this.warn.warn(`presence:${parsed.deviceId}`, `dropped malformed presence from ${parsed.deviceId}: ${decoded.error}`);
      return;
    }
    this.metrics.record('presence', 'accepted');
    if (decoded.value.online) this.sync.request(parsed.deviceId);
    if (this.embedded) return; // the broker's own connection events are the presence there
    this.buffer.add({
      deviceId: parsed.deviceId,
      online: decoded.value.online,
      at: presenceTime(decoded.value.at, receivedAt),
      session: decoded.value.session ?? null,
      replica: null,
    });
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
