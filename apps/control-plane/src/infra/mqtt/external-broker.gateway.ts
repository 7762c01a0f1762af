import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import mqtt, { type MqttClient } from 'mqtt';
import { type BrokerAuthenticator, type ConnectionEvent, type MessageHandler, MqttGateway, type OutboundMessage, type PublishOptions } from './mqtt-gateway.js';
import { runWithConcurrency } from './run-with-concurrency.js';
import { matchesFilter } from './topic-filter.js';

export interface ExternalBrokerOptions {
  url: string;
  username?: string;
  password?: string;
  /** Shared-subscription group; set when several control-plane replicas share one broker. */
  sharedGroup?: string;
  publicUrls?: string[];
}

/**
 * Joins an existing broker (Mosquitto, EMQX) as an MQTT 5 client. Device authentication and
 * per-device ACLs are the broker's job there (docs/deployment.md has the Mosquitto config).
 * Several replicas use `$share/<group>/` subscriptions (MQTT 5 §4.8.2) so each device message
 * is handled by one replica.
 */
export class ExternalBrokerGateway extends MqttGateway {
  private readonly logger = new Logger('ExternalBroker');
  private client?: MqttClient;
  private readonly handlers: { filter: string; handler: MessageHandler }[] = [];

  constructor(private readonly options: ExternalBrokerOptions) {
    super();
  }

  async start(): Promise<void> {
    const client = mqtt.connect(this.options.url, {
      protocolVersion: 5,
      clientId: `fleetline-cp-${randomBytes(6).toString('hex')}`,
      username: this.options.username,
      password: this.options.password,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
      resubscribe: true,
    });
    this.client = client;
    client.on('message', (topic, payload) => {
      for (const { filter, handler } of this.handlers) {
        if (!matchesFilter(filter, topic)) continue;
        Promise.resolve()
          .then(() => handler({ topic, payload }))
          .catch((err: unknown) => this.logger.error(`handler for ${filter} failed: ${String(err)}`));
      }
    });
    client.on('error', (err) => this.logger.warn(`broker error: ${err.message}`));
    client.on('reconnect', () => this.logger.warn('reconnecting to broker'));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    for (const { filter } of this.handlers) await this.attach(filter);
    this.logger.log(`connected to external broker ${this.options.url}`);
  }

  async stop(): Promise<void> {
    await this.client?.endAsync();
  }

  async publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    await this.requireClient().publishAsync(topic, payload, { qos: options.qos, retain: options.retain });
  }

  async publishMany(messages: OutboundMessage[]): Promise<void> {
    // Bounded in-flight window: the broker's receive maximum is the real limit (MQTT 5 §4.9).
    await runWithConcurrency(messages, 512, (m) => this.publish(m.topic, m.payload, m));
  }

  /** Subscriptions made before start() (from onModuleInit) are sent when the connection is up. */
  async subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.handlers.push({ filter, handler });
    if (this.client?.connected) await this.attach(filter);
  }

  private async attach(filter: string): Promise<void> {
    const wire = this.options.sharedGroup ? `$share/${this.options.sharedGroup}/${filter}` : filter;
    await this.requireClient().subscribeAsync(wire, { qos: 1 });
  }

  onConnectionEvent(_listener: (event: ConnectionEvent) => void): void {
    // Presence comes from the devices' own presence messages and last wills on an external broker.
  }

  async disconnectClient(_clientId: string): Promise<boolean> {
    return false;
  }

  useAuthenticator(_authenticator: BrokerAuthenticator): void {
    // The external broker authenticates devices (e.g. mosquitto-go-auth against the devices table).
  }

  connectionCount(): number | null {
    return null;
  }

  publicUrls(): string[] {
    return this.options.publicUrls ?? [this.options.url];
  }

  private requireClient(): MqttClient {
    if (!this.client) throw new Error('external broker not connected');
    return this.client;
  }
}
