import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { decodePayload, parseDeviceTopic, presenceMessageSchema, topics } from '@fleetline/protocol';
import { EmbeddedBrokerGateway } from '../infra/mqtt/embedded-broker.gateway.js';
import { type InboundMessage, MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { DeviceIngestMetrics } from './device-ingest-metrics.js';
import { DevicesRepository } from './devices.repository.js';
import { PresenceBuffer, presenceTime } from './presence-buffer.js';
import { RateLimitedLog } from './rate-limited-log.js';

const FLUSH_EVERY_MS = 300;

/**
 * Keeps devices.online / last_seen_at current from two sources: the embedded broker's own
 * connection events, and the devices' `presence` messages (retained online on connect, offline
 * as last will; the only source on an external broker). Events are buffered and written every
 * FLUSH_EVERY_MS with one set-based UPDATE: newest event per device wins, and an event older than
 * the stored presence_changed_at never overwrites it.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Presence');
  private readonly warn = new RateLimitedLog(this.logger);
  private readonly buffer = new PresenceBuffer();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;

  constructor(
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly devices: DevicesRepository,
    private readonly metrics: DeviceIngestMetrics,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.gateway instanceof EmbeddedBrokerGateway) {
      // The embedded broker lives in this process: when it starts, nobody is connected, whatever
      // the table says after a crash or a shutdown that could not record the last disconnects.
      await this.devices.markAllOffline();
    }
    this.gateway.onConnectionEvent((event) => this.buffer.add({ deviceId: event.clientId, online: event.online, at: event.at }));
    await this.gateway.subscribe(topics.fleetFilter('presence'), (m) => this.onPresence(m));
    this.timer = setInterval(() => {
      if (!this.flushing) void this.flush();
    }, FLUSH_EVERY_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buffer.size === 0) return;
    this.flushing = this.flushOnce().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const { ids, online, at } = this.buffer.drain();
    try {
      await this.devices.applyPresence(ids, online, at);
    } catch (err) {
      this.logger.error(`recording presence of ${ids.length} device(s) failed: ${String(err)}`);
      // Put them back; anything newer that arrived meanwhile still wins (PresenceBuffer.add).
      ids.forEach((deviceId, i) => this.buffer.add({ deviceId, online: online[i]!, at: new Date(at[i]!) }));
    }
  }

  private onPresence(message: InboundMessage): void {
    if (message.payload.length === 0) return; // a cleared retained message (MQTT 3.1.1 §3.3.1.3)
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
    this.buffer.add({ deviceId: parsed.deviceId, online: decoded.value.online, at: presenceTime(decoded.value.at, receivedAt) });
  }
}
