/**
 * The control plane's only view of MQTT. Two implementations: the embedded aedes broker
 * (in-process publish/subscribe, no loopback client) and an external broker (Mosquitto, EMQX)
 * joined as an mqtt.js client. Feature code depends on this abstract class only.
 */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
}

/**
 * Handles one device message. A returned promise means "not stored yet": the gateway acknowledges
 * the device's QoS 1 publish only once it resolves.
 */
export type MessageHandler = (message: InboundMessage) => void | Promise<void>;

export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
}

export interface OutboundMessage extends PublishOptions {
  topic: string;
  payload: Buffer;
}

/** A device connection seen by the broker itself (embedded mode only; external brokers report presence through messages). */
export interface ConnectionEvent {
  clientId: string;
  online: boolean;
  at: Date;
  /** Names this connection: `<replicaId>:<boot>:<n>`; the disconnect of a session only ends that session. */
  session: string;
  /** Replica whose broker holds the connection. */
  replica: string;
}

/** Decides whether a client may connect. Registered by the devices feature (embedded broker only). */
export interface BrokerAuthenticator {
  authenticate(clientId: string, username: string | undefined, password: Buffer | undefined): Promise<boolean>;
  /**
   * A client whose TLS certificate chains to the client CA and names its client id: true when
   * that certificate (its SHA-256, lowercase hex) is the one registered for the live device.
   */
  authenticateCertificate?(clientId: string, fingerprint: string): Promise<boolean>;
  /**
   * Per-source limit of failed CONNECTs (optional): `check` answers 0 to go on or the
   * milliseconds the source must wait; `failed` records a refused CONNECT of the source.
   * Neither rejects (the limits may live in Redis; SourceLimits answers from memory when it is away).
   */
  connectLimit?: { check(source: string): Promise<number>; failed(source: string): Promise<void> };
}

export abstract class MqttGateway {
  /** Publishes one message; resolves when the broker has accepted it (QoS1: PUBACK on an external broker). */
  abstract publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void>;

  /**
   * Publishes many messages with bounded concurrency; resolves when all were accepted.
   * Used for a rollout wave: thousands of retained desired states at once.
   */
  abstract publishMany(messages: OutboundMessage[]): Promise<void>;

  /**
   * Subscribes to a fleet-wide filter such as `fleet/v1/devices/+/reported`. On an external
   * broker with several replicas this becomes a shared subscription so each message is handled once.
   * The handler must not throw; decoding and error accounting are the caller's job.
   */
  abstract subscribe(filter: string, handler: MessageHandler): Promise<void>;

  /** Connection events for presence (embedded broker only; a no-op registration on an external broker). */
  abstract onConnectionEvent(listener: (event: ConnectionEvent) => void): void;

  /** Drops a device's live connection (decommission), on whichever replica holds it. External broker: not possible, returns false. */
  abstract disconnectClient(clientId: string): Promise<boolean>;

  /** Only the embedded broker authenticates devices itself. */
  abstract useAuthenticator(authenticator: BrokerAuthenticator): void;

  /** Current number of device connections when the broker can tell (embedded), else null. */
  abstract connectionCount(): number | null;

  /** Broker addresses devices may connect to, the preferred first (handed out at enrollment). */
  abstract publicUrls(): string[];

  /** The first of publicUrls(). */
  publicUrl(): string {
    return this.publicUrls()[0]!;
  }

  /** Crash sweep of a clustered broker: the replicas whose devices should be marked offline (none elsewhere). */
  deadReplicas(): Promise<string[]> {
    return Promise.resolve([]);
  }

  /** Called after a dead replica's devices were marked offline. */
  forgetReplica(_replicaId: string): Promise<void> {
    return Promise.resolve();
  }
}
