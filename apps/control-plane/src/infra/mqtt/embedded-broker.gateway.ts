import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, TLSSocket } from 'node:tls';
import { Logger } from '@nestjs/common';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { isValidDeviceId, parseDeviceTopic } from '@fleetline/protocol';
import { authorizeDevicePublish, authorizeDeviceSubscribe, authorizeDeviceWill } from './device-acl.js';
import { BrokerMetrics, type DisconnectReason } from './broker-metrics.js';
import { ConnectAdmission, HELLO_HOLD_MS } from './connect-admission.js';
import type { DeviceRouter, RouterFrame } from './cluster/device-router.js';
import { type BrokerAuthenticator, type ConnectionEvent, type MessageHandler, MqttGateway, type OutboundMessage, type PublishOptions } from './mqtt-gateway.js';
import { guardPacketSize } from './packet-size-guard.js';
import { type PeerCertificate, peerCertificate } from './client-certificate.js';
import type { TransportSecurity } from '../tls/transport-security.js';
import { runWithConcurrency } from './run-with-concurrency.js';
import { matchesFilter } from './topic-filter.js';
import { listenError } from '../port-in-use.js';

export interface EmbeddedBrokerOptions {
  port: number;
  host: string;
  wsPort?: number;
  /** false: no plain TCP or WebSocket listener (TLS ones only). */
  plain?: boolean;
  /** MQTT over TLS; needs `security`. */
  tlsPort?: number;
  /** MQTT over secure WebSocket; needs `security`. */
  wssPort?: number;
  /** The certificate the TLS listeners serve, reloaded without a restart. */
  security?: TransportSecurity;
  publicUrls?: string[];
  maxPacketBytes: number;
  drainTimeoutMs: number;
  /** Most connections establishing at once (CONNECT until their hello is stored); past it a CONNECT is refused with "server unavailable" (connect-admission.ts). */
  maxPendingConnects: number;
  /** Names this replica in connection sessions. */
  replicaId: string;
  /** Set when several replicas each run an embedded broker: reaches devices connected elsewhere. */
  router?: DeviceRouter;
}

/** A replica is presumed dead when it has not said it is alive for this long (crash sweep). */
const REPLICA_DEAD_AFTER_MS = 30_000;

/** MQTT 3.1.1 §3.2.2.3 CONNACK return codes aedes passes through. */
const CONNACK_SERVER_UNAVAILABLE = 3;
const CONNACK_BAD_CREDENTIALS = 4;
const CONNACK_NOT_AUTHORIZED = 5;

/**
 * aedes in this process. The control plane talks to it in-process (aedes.publish /
 * aedes.subscribe) rather than as a loopback client. Devices are authenticated against their own
 * credential and confined to their own topics (device-acl.ts).
 *
 * With a router (several replicas, each with its own broker): a device's messages are handled by
 * the replica it is connected to, and a message for a device connected elsewhere goes through the
 * router to that replica. Nothing is retained and sessions are clean, so the broker's memory is
 * per live connection only.
 */
export class EmbeddedBrokerGateway extends MqttGateway {
  private readonly logger = new Logger('EmbeddedBroker');
  private broker?: Aedes;
  private server?: Server;
  private wsServer?: WebSocketServer;
  private tlsServer?: TlsServer;
  private httpsServer?: HttpsServer;
  private wssServer?: WebSocketServer;
  private authenticator?: BrokerAuthenticator;
  private readonly connectionListeners: ((event: ConnectionEvent) => void)[] = [];
  private boundPort = 0;
  private boundWsPort = 0;
  private boundTlsPort = 0;
  private boundWssPort = 0;
  private readonly subscriptions: { filter: string; handler: MessageHandler }[] = [];
  private readonly sessions = new WeakMap<Client, string>();
  /** Why a connection is closing, recorded by whatever closes it, counted when aedes reports it gone. */
  private readonly closeCauses = new WeakMap<Client, DisconnectReason>();
  /** Connections holding an admission slot until their first message is stored, with its release. */
  private readonly establishing = new Map<Client, () => void>();
  private readonly sessionPrefix: string;
  private sessionCounter = 0;
  private heartbeat?: NodeJS.Timeout;
  private readonly router?: DeviceRouter;
  readonly admission: ConnectAdmission;

  constructor(
    private readonly options: EmbeddedBrokerOptions,
    readonly metrics: BrokerMetrics = new BrokerMetrics(),
  ) {
    super();
    this.router = options.router;
    this.admission = new ConnectAdmission(options.maxPendingConnects);
    this.sessionPrefix = `${options.replicaId}:${Date.now().toString(36)}:`;
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
        const source = clientAddress(client);
        const limit = authenticator.connectLimit;
        const refuse = (code: number, reason: string): void => {
          this.metrics.denied('connect', reason);
          const error = Object.assign(new Error(reason), { returnCode: code }) as AuthenticateError;
          // Every refused CONNECT but a rate-limited one takes from the source's failure bucket,
          // before the CONNACK goes out, so an immediate retry from the source sees it.
          if (code !== CONNACK_SERVER_UNAVAILABLE && limit) void limit.failed(source).then(() => done(error, false));
          else done(error, false);
        };
        if (!limit) return this.admitConnect(client, username, password, authenticator, refuse, done);
        // "Server unavailable" is the refusal MQTT 3.1.1 has for "not now": clients back off and retry.
        void limit
          .check(source)
          .then((waitMs) =>
            waitMs > 0
              ? refuse(CONNACK_SERVER_UNAVAILABLE, 'too many failed connects from this address')
              : this.admitConnect(client, username, password, authenticator, refuse, done),
          );
      },
      authorizePublish: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => {
        if (!client) return done(null); // the broker itself (wills are checked at connect)
        const decision = authorizeDevicePublish(client.id, packet.topic, packet.retain);
        if (!decision.allowed) {
          this.metrics.denied('publish', decision.reason);
          // MQTT 3.1.1 has no negative PUBACK; aedes closes the connection on an error here.
          return done(new Error(decision.reason));
        }
        const received = performance.now();
        const acked = (): void => this.metrics.onAck?.((performance.now() - received) / 1000);
        this.ingest(client, packet).then(
          () => {
            acked();
            this.releaseAdmission(client);
            done(null);
          },
          (err: unknown) => {
            acked();
            this.releaseAdmission(client);
            // Not stored: no PUBACK. Closing the connection (aedes does on an error here) is the only
            // refusal MQTT 3.1.1 has; the agent keeps the message in its outbox and resends it after
            // reconnecting. A QoS 0 message has no acknowledgement to withhold and nobody resends it.
            this.metrics.denied('publish', `not stored: ${String(err)}`);
            this.logger.warn(`message of ${client.id} on ${packet.topic} not stored, ${packet.qos > 0 ? 'not acknowledged' : 'lost (QoS 0)'}: ${String(err)}`);
            done(packet.qos > 0 ? new Error('message not stored') : null);
          },
        );
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
    if (this.router) {
      await this.router.start((deviceId, frame) => this.onFrame(deviceId, frame));
      await this.beat();
      this.heartbeat = setInterval(() => void this.beat().catch((err: unknown) => this.logger.warn(`replica heartbeat: ${String(err)}`)), 5000);
      this.heartbeat.unref();
    }
    for (const { filter, handler } of this.subscriptions) await this.attach(filter, handler);
    broker.on('client', (client: Client) => this.onClient(client));
    broker.on('clientDisconnect', (client: Client) => this.onClientGone(client));
    broker.on('clientError', (client: Client, err: Error) => {
      // The first cause wins: a keepalive or drain timeout is followed by the error of the closed socket.
      if (!this.closeCauses.has(client)) this.closeCauses.set(client, err.message === 'drain timeout' ? 'drain-timeout' : 'error');
      this.logger.debug(`client ${client.id}: ${err.message}`);
    });
    broker.on('keepaliveTimeout', (client: Client) => this.closeCauses.set(client, 'keepalive-timeout'));

    const { host, maxPacketBytes } = this.options;
    // Every listener meters the MQTT byte stream it hands to aedes: on TLS that is the decrypted
    // stream of the TLSSocket, on WebSocket the stream inside the frames.
    const handleStream = (stream: Duplex, transport: string, req?: unknown): void => {
      guardPacketSize(stream, maxPacketBytes, (announced) => this.metrics.denied('packet-size', `announced ${announced} bytes (${transport})`));
      broker.handle(stream, req as never);
    };
    const plain = this.options.plain !== false;
    if (plain) {
      this.server = createServer((socket: Socket) => {
        socket.setNoDelay(true);
        handleStream(socket, 'TCP');
      });
      this.boundPort = await listen(this.server, this.options.port, host, 'MQTT_PORT');
    }
    if (plain && this.options.wsPort !== undefined) {
      this.wsServer = new WebSocketServer({ port: this.options.wsPort, host, maxPayload: maxPacketBytes });
      // maxPayload bounds one WebSocket frame, not an MQTT packet (one CONNECT can span many frames):
      // the same packet limit as on TCP applies to the MQTT byte stream inside.
      this.wsServer.on('connection', (ws, req) => handleStream(createWebSocketStream(ws), 'WebSocket', req));
      this.boundWsPort = await wsListening(this.wsServer, this.options.wsPort, host);
    }
    const security = this.options.security;
    if (security && this.options.tlsPort !== undefined) {
      // With a client CA a certificate is asked for, not required: devices with a secret only still connect.
      const clientCerts = security.clientCertificates ? { requestCert: true, rejectUnauthorized: false } : {};
      const tlsServer = createTlsServer({ ...security.mqttSecureContextOptions(), ...clientCerts }, (socket: TLSSocket) => {
        socket.setNoDelay(true);
        handleStream(socket, 'TLS');
      });
      // A failed handshake (wrong CA on the client, plain MQTT on the TLS port) is the client's problem.
      tlsServer.on('tlsClientError', (err) => {
        this.metrics.denied('tls', 'handshake failed');
        this.logger.debug(`TLS handshake: ${err.message}`);
      });
      security.onChange(() => tlsServer.setSecureContext(security.mqttSecureContextOptions()));
      this.tlsServer = tlsServer;
      this.boundTlsPort = await listen(tlsServer, this.options.tlsPort, host, 'MQTT_TLS_PORT');
    }
    if (security && this.options.wssPort !== undefined) {
      const httpsServer = createHttpsServer({
        ...security.mqttSecureContextOptions(),
        ...(security.clientCertificates ? { requestCert: true, rejectUnauthorized: false } : {}),
      });
      httpsServer.on('tlsClientError', (err) => {
        this.metrics.denied('tls', 'handshake failed');
        this.logger.debug(`TLS handshake (secure WebSocket): ${err.message}`);
      });
      security.onChange(() => httpsServer.setSecureContext(security.mqttSecureContextOptions()));
      this.httpsServer = httpsServer;
      this.wssServer = new WebSocketServer({ server: httpsServer, maxPayload: maxPacketBytes });
      this.wssServer.on('connection', (ws, req) => handleStream(createWebSocketStream(ws), 'secure WebSocket', req));
      this.boundWssPort = await listen(httpsServer as unknown as Server, this.options.wssPort, host, 'MQTT_WSS_PORT');
    }
    const listening = [
      ...(this.server ? [`MQTT on ${host}:${this.boundPort}`] : []),
      ...(this.wsServer ? [`WebSocket on ${this.boundWsPort}`] : []),
      ...(this.tlsServer ? [`MQTT over TLS on ${this.boundTlsPort}`] : []),
      ...(this.wssServer ? [`secure WebSocket on ${this.boundWssPort}`] : []),
    ];
    this.logger.log(`embedded MQTT broker: ${listening.join(', ')}`);
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await new Promise<void>((resolve) => (this.wsServer ? this.wsServer.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.wssServer ? this.wssServer.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.httpsServer ? this.httpsServer.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.tlsServer ? this.tlsServer.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.broker ? this.broker.close(() => resolve()) : resolve()));
    await this.router?.stop();
  }

  port(): number {
    return this.boundPort;
  }

  /** Bound WebSocket port (0 when the WebSocket listener is off). */
  wsPort(): number {
    return this.boundWsPort;
  }

  /** Bound MQTT-over-TLS port (0 when TLS is off). */
  tlsPort(): number {
    return this.boundTlsPort;
  }

  /** Bound secure WebSocket port (0 when it is off). */
  wssPort(): number {
    return this.boundWssPort;
  }

  /**
   * A device topic goes to the device's local connection, or through the router to the replica
   * holding it; a device connected nowhere misses it, which is fine: the database has the state
   * and the device is sent it when it says hello.
   */
  async publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    const deviceId = this.router ? parseDeviceTopic(topic)?.deviceId : undefined;
    if (deviceId !== undefined && this.router && !this.localClient(deviceId)) {
      await this.router.send(deviceId, { kind: 'publish', topic, payload });
      return;
    }
    await this.publishLocal(topic, payload, options);
  }

  private publishLocal(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
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

  /**
   * In-process delivery of what the broker itself publishes on a subscribed filter (a will aedes
   * replays with no client, the control plane's own publishes). A device's messages carry its
   * client id (aedes sets packet.clientId) and were handled already in authorizePublish, before
   * their PUBACK: they are not delivered a second time here.
   */
  private attach(filter: string, handler: MessageHandler): Promise<void> {
    const broker = this.requireBroker();
    return new Promise((resolve) => {
      broker.subscribe(
        filter,
        (packet: PublishPacket & { clientId?: string }, callback: () => void) => {
          if (packet.clientId !== undefined) return callback();
          void this.dispatch(handler, packet).then(callback, (err: unknown) => {
            this.logger.error(`handler for ${filter} failed: ${String(err)}`);
            callback();
          });
        },
        () => resolve(),
      );
    });
  }

  /**
   * Runs the handlers of a device's publish before aedes acknowledges it: aedes awaits
   * authorizePublish before it writes the PUBACK (QoS 1) and before it reads the client's next
   * packets (the packets of one socket read are handled concurrently, so they can share a batch;
   * the next read waits for all of them), which is per-device back-pressure while the database is slow.
   * Resolves when every handler has stored the message; rejects when one could not.
   */
  private async ingest(client: Client, packet: PublishPacket): Promise<void> {
    let pending: Promise<void>[] | undefined;
    for (const { filter, handler } of this.subscriptions) {
      if (!matchesFilter(filter, packet.topic)) continue;
      (pending ??= []).push(this.dispatch(handler, packet, client.id));
    }
    if (pending) await Promise.all(pending);
  }

  /**
   * Hands a device's message to the control plane. With a router, a device's messages wait until
   * its channel is routable, so whatever the handler answers (the hello's desired states) and
   * whatever another replica publishes after reading the database can both reach it.
   */
  private async dispatch(handler: MessageHandler, packet: PublishPacket, deviceId?: string): Promise<void> {
    const routed = this.router ? (deviceId ?? parseDeviceTopic(packet.topic)?.deviceId) : undefined;
    if (routed !== undefined) await this.router!.ready(routed);
    await handler({ topic: packet.topic, payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload) });
  }

  onConnectionEvent(listener: (event: ConnectionEvent) => void): void {
    this.connectionListeners.push(listener);
  }

  async disconnectClient(clientId: string): Promise<boolean> {
    const client = this.localClient(clientId);
    if (client) {
      this.closeCauses.set(client, 'control-plane');
      await new Promise<void>((resolve) => client.close(() => resolve()));
      return true;
    }
    if (!this.router) return false;
    return (await this.router.send(clientId, { kind: 'disconnect' })) > 0;
  }

  connectionCount(): number | null {
    return this.broker?.connectedClients ?? 0;
  }

  /** MQTT_PUBLIC_URL, else this broker's own address: over TLS whenever TLS is on. */
  publicUrls(): string[] {
    if (this.options.publicUrls) return this.options.publicUrls;
    const host = this.options.host === '0.0.0.0' || this.options.host === '::' ? '127.0.0.1' : this.options.host;
    if (this.tlsServer) return [`mqtts://${host}:${this.boundTlsPort}`];
    if (this.wssServer) return [`wss://${host}:${this.boundWssPort}`];
    return [`mqtt://${host}:${this.boundPort}`];
  }

  override async deadReplicas(): Promise<string[]> {
    if (!this.router) return [];
    return (await this.router.heartbeat(this.options.replicaId, REPLICA_DEAD_AFTER_MS)).dead;
  }

  override async forgetReplica(replicaId: string): Promise<void> {
    await this.router?.forget(replicaId);
  }

  private async beat(): Promise<void> {
    await this.router?.heartbeat(this.options.replicaId, REPLICA_DEAD_AFTER_MS);
  }

  private onClient(client: Client): void {
    const session = `${this.sessionPrefix}${++this.sessionCounter}`;
    this.sessions.set(client, session);
    this.emitConnection(client.id, true, session);
    if (!this.router) return;
    const router = this.router;
    router.attach(client.id).catch((err: unknown) => this.logger.error(`routing ${client.id} failed: ${String(err)}`));
    // A live connection of this device on another replica is stale now (MQTT 3.1.1 §3.1.4 step 2).
    router.send(client.id, { kind: 'takeover', session }).catch((err: unknown) => this.logger.warn(`takeover of ${client.id}: ${String(err)}`));
  }

  /** The checks of a CONNECT past the source's rate limit, then its credentials (aedes' authenticate). */
  private admitConnect(
    client: Client,
    username: Readonly<string> | undefined,
    password: Readonly<Buffer> | undefined,
    authenticator: BrokerAuthenticator,
    refuse: (code: number, reason: string) => void,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    // The client id is the device id: binding them here is what makes per-device ACLs sound.
    if (!isValidDeviceId(client.id)) return refuse(CONNACK_BAD_CREDENTIALS, 'client id is not a device id');
    if (username !== undefined && username !== client.id) return refuse(CONNACK_BAD_CREDENTIALS, 'username must equal the client id');
    // The broker keeps no state for a device between connections: a persistent session would
    // grow its memory with every device ever seen and could replay commands meant for a
    // credential that no longer exists (MQTT 3.1.1 §3.1.2.4).
    if (!(client as unknown as { clean: boolean }).clean) return refuse(CONNACK_NOT_AUTHORIZED, 'persistent sessions are not kept: connect with clean session');
    const will = (client as unknown as { _will?: { topic: string; retain?: boolean } })._will;
    if (will) {
      const decision = authorizeDeviceWill(client.id, will.topic, will.retain === true);
      if (!decision.allowed) return refuse(CONNACK_NOT_AUTHORIZED, decision.reason);
    }
    // A presented client certificate is the credential (a secret alongside it is not looked at):
    // it must chain to MQTT_TLS_CLIENT_CA_FILE and name the client id, or the CONNECT is refused.
    const cert = clientCertificate(client);
    if (cert.presented && !cert.trusted) return refuse(CONNACK_BAD_CREDENTIALS, `client certificate not trusted: ${cert.reason}`);
    if (cert.presented && !cert.names.includes(client.id)) return refuse(CONNACK_BAD_CREDENTIALS, 'client certificate does not name the client id');
    // Only what passed the cheap checks above competes for a slot; a busy refusal is no failure of the source.
    const release = this.admission.tryEnter();
    if (!release) return refuse(CONNACK_SERVER_UNAVAILABLE, 'busy: too many connects in progress');
    const verdict = cert.presented
      ? (authenticator.authenticateCertificate?.(client.id, cert.fingerprint) ?? Promise.resolve(false))
      : authenticator.authenticate(client.id, username, password ? Buffer.from(password) : undefined);
    verdict.then(
      (ok) => {
        if (ok) {
          this.holdAdmission(client, release);
          // aedes closes a live connection with the same client id once this one is accepted (§3.1.4 step 2).
          const previous = this.localClient(client.id);
          if (previous && previous !== client) this.closeCauses.set(previous, 'takeover');
          done(null, true);
        } else {
          release();
          refuse(CONNACK_BAD_CREDENTIALS, 'bad credentials');
        }
      },
      (err: unknown) => {
        release();
        this.logger.error(`authentication failed for ${client.id}: ${String(err)}`);
        refuse(CONNACK_NOT_AUTHORIZED, 'authentication unavailable');
      },
    );
  }

  /** Keeps a connection's admission slot until its first message is stored (connect-admission.ts). */
  private holdAdmission(client: Client, release: () => void): void {
    const timer = setTimeout(() => this.releaseAdmission(client), HELLO_HOLD_MS);
    timer.unref();
    this.establishing.set(client, () => {
      clearTimeout(timer);
      release();
    });
  }

  private releaseAdmission(client: Client): void {
    const release = this.establishing.get(client);
    if (!release) return;
    this.establishing.delete(client);
    release();
  }

  private onClientGone(client: Client): void {
    this.releaseAdmission(client);
    const session = this.sessions.get(client);
    if (session === undefined) return; // never registered (refused at CONNECT)
    this.metrics.disconnected(this.closeCauses.get(client) ?? 'closed');
    this.emitConnection(client.id, false, session);
    this.router?.detach(client.id);
  }

  private onFrame(deviceId: string, frame: RouterFrame): void {
    const client = this.localClient(deviceId);
    if (!client) return; // gone from here meanwhile; it syncs wherever it reconnects
    switch (frame.kind) {
      case 'publish':
        this.publishLocal(frame.topic, frame.payload, { qos: 1, retain: false }).catch((err: unknown) =>
          this.logger.warn(`delivering a routed message to ${deviceId} failed: ${String(err)}`),
        );
        return;
      case 'takeover':
        if (this.sessions.get(client) !== frame.session) {
          this.closeCauses.set(client, 'takeover');
          client.close();
        }
        return;
      case 'disconnect':
        this.closeCauses.set(client, 'control-plane');
        client.close();
        return;
    }
  }

  private localClient(clientId: string): Client | undefined {
    // aedes keeps live clients in `clients` (not in its typings).
    return (this.broker as unknown as { clients?: Record<string, Client> } | undefined)?.clients?.[clientId];
  }

  private emitConnection(clientId: string, online: boolean, session: string): void {
    const event: ConnectionEvent = { clientId, online, at: new Date(), session, replica: this.options.replicaId };
    for (const listener of this.connectionListeners) listener(event);
  }

  private requireBroker(): Aedes {
    if (!this.broker) throw new Error('embedded broker not started');
    return this.broker;
  }
}

function wsListening(server: WebSocketServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => reject(listenError(err, 'MQTT_WS_PORT', port, host));
    server.once('error', fail);
    server.once('listening', () => {
      server.off('error', fail);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

/** `variable` is the setting that moves this listener, named when its port is taken. */
function listen(server: Server, port: number, host: string, variable: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => reject(listenError(err, variable, port, host));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/** The peer address of a connection (TCP socket, or the HTTP upgrade request of a WebSocket). */
/** The client certificate of a connection over TLS (MQTT over TLS: the stream is the socket; secure WebSocket: the upgrade request's). */
function clientCertificate(client: Client): PeerCertificate {
  const c = client as unknown as { conn?: unknown; req?: { socket?: unknown } };
  const socket = c.conn instanceof TLSSocket ? c.conn : c.req?.socket instanceof TLSSocket ? c.req.socket : undefined;
  return socket ? peerCertificate(socket) : { presented: false };
}

function clientAddress(client: Client): string {
  const c = client as unknown as { conn?: { remoteAddress?: string }; req?: { socket?: { remoteAddress?: string } } };
  return c.conn?.remoteAddress ?? c.req?.socket?.remoteAddress ?? 'unknown';
}
