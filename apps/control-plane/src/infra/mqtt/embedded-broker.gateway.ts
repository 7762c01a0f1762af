import { createServer, type Server, type Socket } from 'node:net';
import { Logger } from '@nestjs/common';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { isValidDeviceId } from '@fleetline/protocol';
import { authorizeDevicePublish, authorizeDeviceSubscribe, authorizeDeviceWill } from './device-acl.js';
import { BrokerMetrics } from './broker-metrics.js';
import { type BrokerAuthenticator, type ConnectionEvent, type MessageHandler, MqttGateway, type OutboundMessage, type PublishOptions } from './mqtt-gateway.js';
import { PacketSizeGuard } from './packet-size-guard.js';
import { runWithConcurrency } from './run-with-concurrency.js';

export interface EmbeddedBrokerOptions {
  port: number;
  host: string;
  wsPort?: number;
  publicUrl?: string;
  maxPacketBytes: number;
  drainTimeoutMs: number;
}

/** MQTT 3.1.1 §3.2.2.3 CONNACK return codes aedes passes through. */
const CONNACK_BAD_CREDENTIALS = 4;
const CONNACK_NOT_AUTHORIZED = 5;

/**
 * The broker of a single-machine install: aedes in this process. The control plane talks to
 * it in-process (aedes.publish / aedes.subscribe) rather than as a loopback client. Devices are
 * authenticated against their own credential and confined to their own topics (device-acl.ts).
 */
export class EmbeddedBrokerGateway extends MqttGateway {
  private readonly logger = new Logger('EmbeddedBroker');
  private broker?: Aedes;
  private server?: Server;
  private wsServer?: WebSocketServer;
  private authenticator?: BrokerAuthenticator;
  private readonly connectionListeners: ((event: ConnectionEvent) => void)[] = [];
  private boundPort = 0;
  private boundWsPort = 0;
  private readonly subscriptions: { filter: string; handler: MessageHandler }[] = [];

  constructor(
    private readonly options: EmbeddedBrokerOptions,
    readonly metrics: BrokerMetrics = new BrokerMetrics(),
  ) {
    super();
  }

  useAuthenticator(authenticator: BrokerAuthenticator): void {
    this.authenticator = authenticator;
  }

  async start(): Promise<void> {
    if (!this.authenticator) throw new Error('embedded broker cannot start without a device authenticator');
    const authenticator = this.authenticator;
    const broker = await Aedes.createBroker({
      // One frozen subscriber must not stall delivery to everyone else (aedes docs: drainTimeout).
      drainTimeout: this.options.drainTimeoutMs,
      concurrency: 1000,
      maxClientsIdLength: 128,
      heartbeatInterval: 60_000,
      connectTimeout: 10_000,
      authenticate: (
        client: Client,
        username: Readonly<string> | undefined,
        password: Readonly<Buffer> | undefined,
        done: (error: AuthenticateError | null, success: boolean | null) => void,
      ) => {
        const refuse = (code: number, reason: string): void => {
          this.metrics.denied('connect', reason);
          const error = Object.assign(new Error(reason), { returnCode: code }) as AuthenticateError;
          done(error, false);
        };
        // The client id is the device id: binding them here is what makes per-device ACLs sound.
        if (!isValidDeviceId(client.id)) return refuse(CONNACK_BAD_CREDENTIALS, 'client id is not a device id');
        if (username !== undefined && username !== client.id) return refuse(CONNACK_BAD_CREDENTIALS, 'username must equal the client id');
        const will = (client as unknown as { _will?: { topic: string } })._will;
        if (will) {
          const decision = authorizeDeviceWill(client.id, will.topic);
          if (!decision.allowed) return refuse(CONNACK_NOT_AUTHORIZED, decision.reason);
        }
        authenticator.authenticate(client.id, username, password ? Buffer.from(password) : undefined).then(
          (ok) => (ok ? done(null, true) : refuse(CONNACK_BAD_CREDENTIALS, 'bad credentials')),
          (err: unknown) => {
            this.logger.error(`authentication failed for ${client.id}: ${String(err)}`);
            refuse(CONNACK_NOT_AUTHORIZED, 'authentication unavailable');
          },
        );
      },
      authorizePublish: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => {
        if (!client) return done(null); // the broker itself (wills are checked at connect)
        const decision = authorizeDevicePublish(client.id, packet.topic, packet.retain);
        if (decision.allowed) return done(null);
        this.metrics.denied('publish', decision.reason);
        // MQTT 3.1.1 has no negative PUBACK; aedes closes the connection on an error here.
        done(new Error(decision.reason));
      },
      authorizeSubscribe: (client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) => {
        if (!client) return done(null, subscription);
        const decision = authorizeDeviceSubscribe(client.id, subscription.topic);
        if (decision.allowed) return done(null, subscription);
        this.metrics.denied('subscribe', decision.reason);
        // MQTT 3.1.1 §3.9.3: a refused filter is answered with SUBACK return code 0x80.
        done(null, null);
      },
    });
    this.broker = broker;
    for (const { filter, handler } of this.subscriptions) await this.attach(filter, handler);
    broker.on('client', (client: Client) => this.emitConnection(client.id, true));
    broker.on('clientDisconnect', (client: Client) => this.emitConnection(client.id, false));
    broker.on('clientError', (client: Client, err: Error) => this.logger.debug(`client ${client.id}: ${err.message}`));

    this.server = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      const guarded = new PacketSizeGuard(socket, this.options.maxPacketBytes, (announced) => {
        this.metrics.denied('packet-size', `announced ${announced} bytes`);
      });
      broker.handle(guarded);
    });
    this.boundPort = await listen(this.server, this.options.port, this.options.host);

    if (this.options.wsPort !== undefined) {
      this.wsServer = new WebSocketServer({ port: this.options.wsPort, host: this.options.host, maxPayload: this.options.maxPacketBytes });
      this.wsServer.on('connection', (ws, req) => broker.handle(createWebSocketStream(ws), req as never));
      await new Promise<void>((resolve) => this.wsServer!.once('listening', resolve));
      const address = this.wsServer.address();
      this.boundWsPort = typeof address === 'object' && address ? address.port : 0;
    }
    this.logger.log(`embedded MQTT broker on ${this.options.host}:${this.boundPort}${this.wsServer ? `, WebSocket on ${this.boundWsPort}` : ''}`);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.wsServer ? this.wsServer.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.broker ? this.broker.close(() => resolve()) : resolve()));
  }

  port(): number {
    return this.boundPort;
  }

  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    const broker = this.requireBroker();
    return new Promise((resolve, reject) => {
      broker.publish({ cmd: 'publish', topic, payload, qos: options.qos, retain: options.retain, dup: false }, (err?: Error) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async publishMany(messages: OutboundMessage[]): Promise<void> {
    await runWithConcurrency(messages, 256, (m) => this.publish(m.topic, m.payload, m));
  }

  /** Subscriptions made before start() (from onModuleInit) are applied when the broker starts. */
  async subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.subscriptions.push({ filter, handler });
    if (this.broker) await this.attach(filter, handler);
  }

  private attach(filter: string, handler: MessageHandler): Promise<void> {
    const broker = this.requireBroker();
    return new Promise((resolve) => {
      broker.subscribe(
        filter,
        (packet: PublishPacket, callback: () => void) => {
          try {
            handler({ topic: packet.topic, payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload) });
          } catch (err) {
            this.logger.error(`handler for ${filter} threw: ${String(err)}`);
          }
          callback();
        },
        () => resolve(),
      );
    });
  }

  onConnectionEvent(listener: (event: ConnectionEvent) => void): void {
    this.connectionListeners.push(listener);
  }

  async disconnectClient(clientId: string): Promise<boolean> {
    // aedes keeps live clients in `clients` (not in its typings).
    const client = (this.broker as unknown as { clients?: Record<string, Client> } | undefined)?.clients?.[clientId];
    if (!client) return false;
    await new Promise<void>((resolve) => client.close(() => resolve()));
    return true;
  }

  connectionCount(): number | null {
    return this.broker?.connectedClients ?? 0;
  }

  publicUrl(): string {
    return this.options.publicUrl ?? `mqtt://${this.options.host === '0.0.0.0' ? '127.0.0.1' : this.options.host}:${this.boundPort}`;
  }

  private emitConnection(clientId: string, online: boolean): void {
    const event = { clientId, online, at: new Date() };
    for (const listener of this.connectionListeners) listener(event);
  }

  private requireBroker(): Aedes {
    if (!this.broker) throw new Error('embedded broker not started');
    return this.broker;
  }
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
