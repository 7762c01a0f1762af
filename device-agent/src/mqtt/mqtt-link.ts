import { EventEmitter } from 'node:events';
import net from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Backoff } from '../util/backoff.js';

export interface MqttLinkOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
  will: { topic: string; payload: Buffer; qos: 1; retain: boolean };
  /** Source address for the TCP connection (lets a simulator spread sockets over 127.0.0.x). */
  localAddress?: string;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  publishTimeoutMs?: number;
  backoff?: Backoff;
  /** A connection that lasted this long resets the backoff. */
  stableAfterMs?: number;
  log?: (msg: string) => void;
}

/**
 * One device's broker connection. mqtt.js' fixed reconnectPeriod is disabled (0) and reconnects are
 * driven here with full-jitter exponential backoff, so a fleet that lost its broker does not return
 * in synchronized waves. Sessions are persistent (clean=false, MQTT 3.1.1 §3.1.2.4) so QoS1
 * messages queued for the device while it was away are delivered on reconnect.
 *
 * Events: 'connect' (sessionPresent), 'close', 'message' (topic, payload).
 */
export class MqttLink extends EventEmitter {
  private client: MqttClient | undefined;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  connected = false;

  constructor(private readonly opts: MqttLinkOptions) {
    super();
    this.backoff = opts.backoff ?? new Backoff({ baseMs: 1000, capMs: 60_000 });
  }

  start(): void {
    this.stopped = false;
    const url = new URL(this.opts.url);
    const options: IClientOptions = {
      protocolVersion: 4, // the broker speaks MQTT 3.1.1
      clientId: this.opts.clientId,
      username: this.opts.username,
      password: this.opts.password,
      clean: false,
      reconnectPeriod: 0,
      resubscribe: false,
      keepalive: this.opts.keepaliveSeconds ?? 30,
      connectTimeout: this.opts.connectTimeoutMs ?? 15_000,
      will: this.opts.will,
    };
    if (url.protocol === 'mqtt:' || url.protocol === 'tcp:') {
      const host = url.hostname;
      const port = Number(url.port || 1883);
      const localAddress = this.opts.localAddress;
      // mqtt.js' own TCP builder ignores localAddress, so build the socket here.
      this.client = new mqtt.MqttClient(() => net.createConnection({ host, port, ...(localAddress ? { localAddress } : {}) }), {
        ...options,
        host,
        port,
        protocol: 'mqtt',
      });
    } else {
      this.client = mqtt.connect(this.opts.url, options);
    }
    const client = this.client;
    client.on('connect', (ack) => {
      this.connected = true;
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => this.backoff.reset(), this.opts.stableAfterMs ?? 30_000);
      this.stableTimer.unref();
      this.emit('connect', ack.sessionPresent);
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
    client.on('error', (err) => this.opts.log?.(`mqtt error: ${err.message}`));
    client.on('close', () => {
      const was = this.connected;
      this.connected = false;
      clearTimeout(this.stableTimer);
      if (was) this.emit('close');
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.opts.log?.(`mqtt reconnect in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopped || !this.client) return;
      this.client.reconnect();
    }, delay);
  }

  subscribe(filters: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.client) return reject(new Error('not started'));
      this.client.subscribe(
        filters.map((f) => f),
        { qos: 1 },
        (err, granted) => {
          if (err) return reject(err);
          // MQTT 3.1.1 §3.9.3: 0x80 in SUBACK means the broker refused the filter.
          const refused = (granted ?? []).filter((g) => g.qos === 128);
          if (refused.length > 0) return reject(new Error(`subscription refused: ${refused.map((g) => g.topic).join(', ')}`));
          resolve();
        },
      );
    });
  }

  /** Resolves on PUBACK; rejects when offline or after the publish timeout. */
  publish(topic: string, payload: string | Buffer, opts: { retain?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const client = this.client;
      if (!client || !this.connected) return reject(new Error('offline'));
      const timer = setTimeout(() => reject(new Error('publish timed out')), this.opts.publishTimeoutMs ?? 15_000);
      client.publish(topic, payload, { qos: 1, retain: opts.retain ?? false }, (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Closes the connection. With `graceful` false the broker publishes the last will (simulated power cut). */
  async stop(graceful = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) return;
    await new Promise<void>((resolve) => client.end(!graceful, {}, () => resolve()));
    this.connected = false;
  }

  /** Drops the TCP connection without DISCONNECT (tests, simulated network loss). Reconnects follow. */
  dropConnection(): void {
    this.client?.stream?.destroy();
  }
}
