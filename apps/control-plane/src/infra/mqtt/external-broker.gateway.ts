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
  /**
   * Stable name of this replica's broker sessions (e.g. from REPLICA_ID). When set, the ingest
   * connections keep persistent sessions (Clean Start 0, MQTT 5 §3.1.2.4), so a message this
   * replica had not acknowledged when it crashed or failed to store it is delivered again when
   * it reconnects (§4.4). Without it the sessions are clean and die with the connection.
   */
  sessionId?: string;
  /** Device messages handled at once (one ingest connection each: mqtt.js handles a connection's messages one at a time). Default 16. */
  ingestConcurrency?: number;
  /** How long the broker keeps a persistent ingest session of a replica that is gone, in seconds. Default one day. */
  sessionExpirySeconds?: number;
}

const DEFAULT_INGEST_CONCURRENCY = 16;
const DEFAULT_SESSION_EXPIRY_SECONDS = 86_400;

/**
 * Joins an existing broker (Mosquitto, EMQX) as MQTT 5 clients. Device authentication and
 * per-device ACLs are the broker's job there (docs/deployment.md has the Mosquitto config).
 * Several replicas use `$share/<group>/` subscriptions (MQTT 5 §4.8.2) so each device message
 * is handled by one replica.
 *
 * Commit before ack: device messages arrive on a pool of ingest connections, each subscribed to
 * every filter through one shared group (the configured one, else one private to this gateway),
 * so the broker spreads messages over them. mqtt.js sends a QoS 1 PUBACK only when the
 * `handleMessage` callback is called and handles a connection's next message only after that, so
 * each connection has one message in flight: the pool size bounds the concurrency, and a slow
 * database slows the broker's delivery instead of filling memory. A message whose handler rejects
 * (not stored) is not acknowledged: the connection is dropped and reopened, and the broker
 * delivers it again on the resumed session (§4.4; persistent sessions need `sessionId`).
 */
export class ExternalBrokerGateway extends MqttGateway {
  private readonly logger = new Logger('ExternalBroker');
  private client?: MqttClient;
  private ingestClients: MqttClient[] = [];
  private readonly handlers: { filter: string; handler: MessageHandler }[] = [];
  private readonly instance = randomBytes(6).toString('hex');
  /** Device messages not acknowledged because a handler could not store them. */
  notStored = 0;

  constructor(private readonly options: ExternalBrokerOptions) {
    super();
  }

  async start(): Promise<void> {
    const client = mqtt.connect(this.options.url, {
      protocolVersion: 5,
      clientId: `fleetline-cp-${this.instance}`,
      username: this.options.username,
      password: this.options.password,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.on('error', (err) => this.logger.warn(`broker error: ${err.message}`));
    client.on('reconnect', () => this.logger.warn('reconnecting to broker'));
    await connected(client);
    const size = Math.max(1, this.options.ingestConcurrency ?? DEFAULT_INGEST_CONCURRENCY);
    this.ingestClients = Array.from({ length: size }, (_, i) => this.ingestClient(i));
    await Promise.all(this.ingestClients.map((c) => connected(c)));
    for (const { filter } of this.handlers) await this.attach(filter);
    this.logger.log(`connected to external broker ${this.options.url} (${size} ingest connections)`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.ingestClients.map((c) => c.endAsync()));
    await this.client?.endAsync();
  }

  /** One ingest connection: handles one message at a time and acknowledges it only once stored. */
  private ingestClient(index: number): MqttClient {
    const persistent = this.options.sessionId !== undefined;
    const client = mqtt.connect(this.options.url, {
      protocolVersion: 5,
      clientId: persistent ? `fleetline-cp-${this.options.sessionId}-${index}` : `fleetline-cp-${this.instance}-${index}`,
      username: this.options.username,
      password: this.options.password,
      clean: !persistent,
      ...(persistent ? { properties: { sessionExpiryInterval: this.options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS } } : {}),
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      // mqtt.js subscribes again only when the session was not resumed (a resumed one still has them, §3.2.2.1.1).
      resubscribe: true,
    });
    // Set after a refusal until the connection is reopened: later messages of the same stream are
    // not handled either (they would be acknowledged ahead of the one being redelivered).
    let refusing = false;
    client.on('connect', () => (refusing = false));
    client.on('error', (err) => this.logger.warn(`ingest connection ${index}: ${err.message}`));
    client.handleMessage = (packet, callback) => {
      if (refusing) return callback(new Error('connection is being reopened'));
      const topic = packet.topic;
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      this.handle(topic, payload).then(
        () => callback(),
        (err: unknown) => {
          this.notStored++;
          this.logger.warn(`message on ${topic} not stored, not acknowledged; reopening ingest connection ${index}: ${String(err)}`);
          if (packet.qos > 0) {
            refusing = true;
            // MQTT 5 has no "send it again" PUBACK; the broker redelivers unacknowledged messages on a resumed session.
            client.stream.destroy();
          }
          callback(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    return client;
  }

  private async handle(topic: string, payload: Buffer): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const { filter, handler } of this.handlers) {
      if (!matchesFilter(filter, topic)) continue;
      pending.push(Promise.resolve().then(() => handler({ topic, payload })));
    }
    await Promise.all(pending);
  }

  async publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    await this.requireClient().publishAsync(topic, payload, { qos: options.qos, retain: options.retain });
  }

  async publishMany(messages: OutboundMessage[]): Promise<void> {
    // Bounded in-flight window: the broker's receive maximum is the real limit (MQTT 5 §4.9).
    await runWithConcurrency(messages, 512, (m) => this.publish(m.topic, m.payload, m));
  }

  async subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.handlers.push({ filter, handler });
    if (this.ingestClients.length > 0) await this.attach(filter);
  }

  /** Subscriptions made before start() (from onModuleInit) are sent when the connections are up. */
  private async attach(filter: string): Promise<void> {
    const group = this.options.sharedGroup ?? `fleetline-${this.options.sessionId ?? this.instance}`;
    await Promise.all(this.ingestClients.map((c) => c.subscribeAsync(`$share/${group}/${filter}`, { qos: 1 })));
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

function connected(client: MqttClient): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
}
