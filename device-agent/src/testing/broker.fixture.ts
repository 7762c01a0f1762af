import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import { parseDeviceTopic } from '@fleetline/protocol';

export interface ReceivedMessage {
  clientId: string | null;
  topic: string;
  payload: Buffer;
  retain: boolean;
  /** Position among everything the broker saw (messages and subscriptions). */
  order: number;
}

export interface SeenSubscription {
  clientId: string;
  topic: string;
  order: number;
}

/**
 * A real aedes broker on an ephemeral port with per-device password auth and the device topic
 * rule (a device publishes only on its own topics). `stop()` + `start()` keeps the port and the
 * in-memory state, like a broker restart behind the same address.
 */
export class BrokerFixture {
  broker: Aedes | undefined;
  private server: Server | undefined;
  port = 0;
  readonly received: ReceivedMessage[] = [];
  readonly subscriptions: SeenSubscription[] = [];
  private seen = 0;
  /** CONNECTs still to refuse with return code 3, "server unavailable", as a busy broker does. */
  refuseBusy = 0;
  /** CONNECTs refused so far through `refuseBusy`. */
  refusedBusy = 0;

  constructor(private readonly credentials: Map<string, string>) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.broker) {
      this.broker = await Aedes.createBroker({
        authenticate: (
          client: Client,
          username: Readonly<string> | undefined,
          password: Readonly<Buffer> | undefined,
          done: (error: AuthenticateError | null, success: boolean | null) => void,
        ) => {
          if (this.refuseBusy > 0) {
            this.refuseBusy--;
            this.refusedBusy++;
            return done(Object.assign(new Error('server unavailable'), { returnCode: 3 }) as AuthenticateError, false);
          }
          const ok = username === client.id && password !== undefined && this.credentials.get(client.id) === Buffer.from(password).toString('utf8');
          if (ok) return done(null, true);
          done(Object.assign(new Error('bad credentials'), { returnCode: 4 }) as AuthenticateError, false);
        },
        authorizePublish: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => {
          if (!client) return done(null);
          const t = parseDeviceTopic(packet.topic);
          done(t && t.deviceId === client.id ? null : new Error(`topic of another device: ${packet.topic}`));
        },
      });
      this.broker.on('publish', (packet, client) => {
        if (packet.topic.startsWith('$SYS')) return;
        this.received.push({
          clientId: client?.id ?? null,
          topic: packet.topic,
          payload: Buffer.from(packet.payload),
          retain: packet.retain,
          order: this.seen++,
        });
      });
      this.broker.on('subscribe', (subscriptions, client) => {
        for (const sub of subscriptions) this.subscriptions.push({ clientId: client.id, topic: sub.topic, order: this.seen++ });
      });
    }
    const broker = this.broker;
    this.server = createServer((socket) => broker.handle(socket));
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Closes the listener and drops every client connection (the broker state is kept). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const broker = this.broker!;
    for (const c of Object.values((broker as unknown as { clients: Record<string, Client> }).clients)) c.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async close(): Promise<void> {
    await this.stop();
    await new Promise<void>((resolve) => this.broker?.close(() => resolve()) ?? resolve());
    this.broker = undefined;
  }

  /** Publishes as the control plane would (server side, no client). */
  publish(topic: string, payload: string | Buffer, retain: boolean): Promise<void> {
    return new Promise((resolve, reject) =>
      this.broker!.publish(
        { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: 1, retain, dup: false },
        (err?: Error) => (err ? reject(err) : resolve()),
      ),
    );
  }

  messages(topic: string): ReceivedMessage[] {
    return this.received.filter((m) => m.topic === topic);
  }

  /** Waits until `predicate` holds over the received messages. */
  async waitFor(predicate: (received: readonly ReceivedMessage[]) => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.received)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for broker messages');
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
