import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Backoff } from '../util/backoff.js';

export interface MqttLinkOptions {
  /** Broker endpoints to use, in order; the link starts at a place chosen by the client id. */
  urls: readonly string[];
  clientId: string;
  username: string;
  password: string;
  /** Last will; built per connection so it can name that connection's session id. */
  will: (session: string) => { topic: string; payload: Buffer; qos: 1 };
  /**
   * PEM CA bundle that mqtts:// and wss:// endpoints must chain to (instead of the system's
   * trust store). A certificate that does not verify fails the connection attempt.
   */
  ca?: string;
  /** Client certificate and key presented to mqtts:// and wss:// endpoints (the broker's mTLS login). */
  clientCert?: { cert: string; key: string };
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
 * in synchronized waves.
 *
 * Sessions are clean (MQTT 3.1.1 §3.1.2.4): the broker keeps nothing for a device between
 * connections, so a broker's memory does not grow with every device it ever saw; what the device
 * missed while away comes from the control plane's database when it says hello.
 *
 * With several endpoints (control-plane replicas, broker cluster nodes) the first one is picked by
 * a hash of the client id, which spreads a fleet evenly, and every failed attempt moves to the next.
 * Each connection gets a fresh random `session` id, named in the last will and the presence message.
 *
 * Events: 'connect' (session), 'close', 'message' (topic, payload).
 */
export class MqttLink extends EventEmitter {
  private client: MqttClient | undefined;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private endpoint: number;
  /** Session id of the current (or next) connection attempt. */
  session = newSessionId();
  connected = false;

  constructor(private readonly opts: MqttLinkOptions) {
    super();
    if (opts.urls.length === 0) throw new Error('no broker URL');
    this.backoff = opts.backoff ?? new Backoff({ baseMs: 1000, capMs: 60_000 });
    this.endpoint = startEndpoint(opts.clientId, opts.urls.length);
  }

  /** The endpoint the next connection attempt uses. */
  get url(): string {
    return this.opts.urls[this.endpoint]!;
  }

  start(): void {
    this.stopped = false;
    const first = new URL(this.url);
    const options: IClientOptions = {
      protocolVersion: 4, // the broker speaks MQTT 3.1.1
      clientId: this.opts.clientId,
      username: this.opts.username,
      password: this.opts.password,
      clean: true,
      reconnectPeriod: 0,
      resubscribe: false,
      keepalive: this.opts.keepaliveSeconds ?? 60,
      connectTimeout: this.opts.connectTimeoutMs ?? 15_000,
      will: { ...this.opts.will(this.session), retain: false },
      // mqtt-packet's default pre-builds 65,536 two-byte Buffers for packet ids on the first write:
      // ≈ 6 MB of heap, a tenth of an idle agent, to save an allocation per packet it sends.
      writeCache: false,
    };
    const ca = this.opts.ca;
    const clientCert = this.opts.clientCert ?? {};
    if (this.opts.urls.every((u) => isTcpUrl(u) || isTlsUrl(u))) {
      const localAddress = this.opts.localAddress;
      // mqtt.js' own TCP builder ignores localAddress and knows one host (its TLS builder keeps the
      // first host's name for SNI and verification after rotating), so build the socket here: it is
      // called again for every reconnect, with whatever endpoint is current then.
      this.client = new mqtt.MqttClient(
        () => {
          const url = new URL(this.url);
          const host = url.hostname.replace(/^\[|\]$/g, '');
          const source = localAddress ? { localAddress } : {};
          if (!isTlsUrl(this.url)) return net.createConnection({ host, port: Number(url.port || 1883), ...source });
          return tls.connect({
            host,
            port: Number(url.port || 8883),
            // SNI takes a name, not an address; verification checks the IP SANs then.
            ...(net.isIP(host) === 0 ? { servername: host } : {}),
            ...(ca !== undefined ? { ca } : {}),
            ...clientCert,
            ...source,
          });
        },
        { ...options, host: first.hostname, port: Number(first.port || defaultPort(first.protocol)), protocol: isTlsUrl(this.url) ? 'mqtts' : 'mqtt' },
      );
    } else {
      // WebSocket endpoints: mqtt.js rotates through `servers` itself on reconnect.
      const servers = this.opts.urls.map((u) => {
        const url = new URL(u);
        return {
          host: url.hostname,
          port: Number(url.port || defaultPort(url.protocol)),
          protocol: url.protocol.replace(':', '') as 'mqtts' | 'ws' | 'wss' | 'mqtt',
        };
      });
      this.client = mqtt.connect(this.url, {
        ...options,
        ...(ca !== undefined ? { ca } : {}), // mqtt.js copies it (and cert, key) into the WebSocket's options
        ...clientCert,
        servers: [...servers.slice(this.endpoint), ...servers.slice(0, this.endpoint)],
      });
    }
    const client = this.client;
    client.on('connect', () => {
      this.connected = true;
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => this.backoff.reset(), this.opts.stableAfterMs ?? 30_000);
      this.stableTimer.unref();
      this.emit('connect', this.session);
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
    client.on('error', (err) => this.opts.log?.(`mqtt error: ${err.message}`));
    client.on('close', () => {
      const was = this.connected;
      this.connected = false;
      clearTimeout(this.stableTimer);
      if (was) this.emit('close');
      // An attempt that never got a CONNACK means this endpoint is down: try the next one.
      else this.endpoint = (this.endpoint + 1) % this.opts.urls.length;
      // The next connection is a new session, with a will that names it (MQTT 3.1.1 §3.1.2.5).
      this.session = newSessionId();
      client.options.will = { ...this.opts.will(this.session), retain: false };
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

  /** Resolves on PUBACK; rejects when offline or after the publish timeout. Never retained (the broker keeps no device state). */
  publish(topic: string, payload: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const client = this.client;
      if (!client || !this.connected) return reject(new Error('offline'));
      const timer = setTimeout(() => reject(new Error('publish timed out')), this.opts.publishTimeoutMs ?? 15_000);
      client.publish(topic, payload, { qos: 1, retain: false }, (err) => {
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

function isTcpUrl(url: string): boolean {
  const protocol = new URL(url).protocol;
  return protocol === 'mqtt:' || protocol === 'tcp:';
}

function isTlsUrl(url: string): boolean {
  const protocol = new URL(url).protocol;
  return protocol === 'mqtts:' || protocol === 'ssl:' || protocol === 'tls:';
}

function defaultPort(protocol: string): number {
  return protocol === 'mqtts:' ? 8883 : protocol === 'ws:' ? 80 : protocol === 'wss:' ? 443 : 1883;
}

/** A stable spread of a fleet over n endpoints: the same device always starts at the same one. */
export function startEndpoint(clientId: string, n: number): number {
  if (n <= 1) return 0;
  return createHash('sha256').update(clientId).digest().readUInt32BE(0) % n;
}

function newSessionId(): string {
  return randomBytes(9).toString('base64url');
}
