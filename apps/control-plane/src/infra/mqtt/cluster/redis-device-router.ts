import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { decodeFrame, type DeviceRouter, encodeFrame, type RouterFrame } from './device-router.js';

const CHANNEL_PREFIX = 'fleetline:device:';
const REPLICAS_KEY = 'fleetline:replicas';
/** Channels per SUBSCRIBE/UNSUBSCRIBE command: a reconnect storm becomes a few hundred commands, not 100,000. */
const SUBSCRIBE_CHUNK = 1000;

interface Pending {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Device routing over Redis pub/sub: one plain channel per connected device
 * (`fleetline:device:<id>`), SUBSCRIBEd by the replica holding the connection.
 *
 * Why not mqemitter-redis (aedes' own Redis emitter): it PSUBSCRIBEs every subscribed topic
 * pattern, and Redis matches every PUBLISH against every pattern, so each message would cost
 * O(devices); it also forwards every device->control-plane message to every replica. Plain
 * channels are a hash lookup per PUBLISH (test/bench/redis-routing.bench.mjs measures both).
 *
 * Subscriptions are coalesced: every attach/detach within one event-loop turn goes out as one
 * SUBSCRIBE/UNSUBSCRIBE with up to SUBSCRIBE_CHUNK channels, in order, so a connect storm is cheap.
 * A device is counted per local connection (a takeover can briefly overlap two).
 */
export class RedisDeviceRouter implements DeviceRouter {
  private readonly logger = new Logger('RedisDeviceRouter');
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly counts = new Map<string, number>();
  /** Devices whose SUBSCRIBE has been confirmed by Redis. */
  private readonly subscribed = new Set<string>();
  private pendingSubscribe = new Map<string, Pending>();
  private pendingUnsubscribe = new Set<string>();
  private flushing: Promise<void> | undefined;
  private scheduled = false;

  constructor(url: string) {
    const options = { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: null };
    this.pub = new Redis(url, { ...options, connectionName: 'fleetline-pub' });
    this.sub = new Redis(url, { ...options, connectionName: 'fleetline-sub' });
  }

  async start(onFrame: (deviceId: string, frame: RouterFrame) => void): Promise<void> {
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const name = channel.toString('utf8');
      if (!name.startsWith(CHANNEL_PREFIX)) return;
      const frame = decodeFrame(message);
      if (!frame) {
        this.logger.warn(`dropped a malformed frame on ${name}`);
        return;
      }
      onFrame(name.slice(CHANNEL_PREFIX.length), frame);
    });
    for (const client of [this.pub, this.sub]) client.on('error', (err: Error) => this.logger.warn(`redis: ${err.message}`));
    await Promise.all([this.pub.connect(), this.sub.connect()]);
  }

  async stop(): Promise<void> {
    await this.flushing;
    this.sub.disconnect();
    await this.pub.quit().catch(() => undefined);
  }

  attach(deviceId: string): Promise<void> {
    const count = (this.counts.get(deviceId) ?? 0) + 1;
    this.counts.set(deviceId, count);
    if (count > 1) return this.ready(deviceId);
    if (this.pendingUnsubscribe.delete(deviceId)) return this.ready(deviceId); // never left
    if (this.subscribed.has(deviceId) && !this.unsubscribing.has(deviceId)) return Promise.resolve();
    // Redis runs one connection's commands in order, so a SUBSCRIBE after an in-flight UNSUBSCRIBE wins.
    return (this.pendingSubscribe.get(deviceId) ?? this.queueSubscribe(deviceId)).promise;
  }

  detach(deviceId: string): void {
    const count = (this.counts.get(deviceId) ?? 0) - 1;
    if (count > 0) {
      this.counts.set(deviceId, count);
      return;
    }
    this.counts.delete(deviceId);
    const pending = this.pendingSubscribe.get(deviceId);
    if (pending) {
      // Never reached Redis: nothing to undo.
      this.pendingSubscribe.delete(deviceId);
      pending.resolve();
      return;
    }
    this.pendingUnsubscribe.add(deviceId);
    this.schedule();
  }

  ready(deviceId: string): Promise<void> {
    return this.pendingSubscribe.get(deviceId)?.promise ?? this.inFlight.get(deviceId) ?? Promise.resolve();
  }

  async send(deviceId: string, frame: RouterFrame): Promise<number> {
    return this.pub.publish(CHANNEL_PREFIX + deviceId, encodeFrame(frame));
  }

  async heartbeat(replicaId: string, withinMs: number): Promise<{ alive: string[]; dead: string[] }> {
    const now = Date.now();
    const [, entries] = await Promise.all([this.pub.zadd(REPLICAS_KEY, now, replicaId), this.pub.zrange(REPLICAS_KEY, 0, -1, 'WITHSCORES')]);
    const alive: string[] = [];
    const dead: string[] = [];
    for (let i = 0; i + 1 < entries.length; i += 2) (Number(entries[i + 1]) >= now - withinMs ? alive : dead).push(entries[i]!);
    return { alive, dead };
  }

  async forget(replicaId: string): Promise<void> {
    await this.pub.zrem(REPLICAS_KEY, replicaId);
  }

  /** Subscribes in flight (sent, not yet confirmed), so ready() can wait for them. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Unsubscribes in flight: an attach meanwhile must subscribe again. */
  private readonly unsubscribing = new Set<string>();

  private queueSubscribe(deviceId: string): Pending {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A failed subscribe is logged by the caller's catch; keep the promise from being unhandled here.
    promise.catch(() => undefined);
    const pending = { promise, resolve, reject };
    this.pendingSubscribe.set(deviceId, pending);
    this.schedule();
    return pending;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const previous = this.flushing ?? Promise.resolve();
      this.flushing = previous.then(() => this.flush()).finally(() => (this.flushing = undefined));
    });
  }

  private async flush(): Promise<void> {
    const subscribe = this.pendingSubscribe;
    const unsubscribe = [...this.pendingUnsubscribe];
    this.pendingSubscribe = new Map();
    this.pendingUnsubscribe = new Set();
    const ids = [...subscribe.keys()];
    for (let i = 0; i < ids.length; i += SUBSCRIBE_CHUNK) {
      const chunk = ids.slice(i, i + SUBSCRIBE_CHUNK);
      const done = this.sub.subscribe(...chunk.map((id) => CHANNEL_PREFIX + id));
      const settled = done.then(() => undefined);
      for (const id of chunk) this.inFlight.set(id, settled);
      try {
        await done;
        for (const id of chunk) {
          // Detached while in flight: it is subscribed now, so undo it in the next flush.
          if (!this.counts.has(id)) this.pendingUnsubscribe.add(id);
          this.subscribed.add(id);
          subscribe.get(id)!.resolve();
        }
      } catch (err) {
        this.logger.error(`subscribing ${chunk.length} device channel(s) failed: ${String(err)}`);
        for (const id of chunk) subscribe.get(id)!.reject(err);
      } finally {
        for (const id of chunk) this.inFlight.delete(id);
      }
    }
    for (let i = 0; i < unsubscribe.length; i += SUBSCRIBE_CHUNK) {
      const chunk = unsubscribe.slice(i, i + SUBSCRIBE_CHUNK).filter((id) => !this.counts.has(id));
      if (chunk.length === 0) continue;
      for (const id of chunk) this.unsubscribing.add(id);
      try {
        await this.sub.unsubscribe(...chunk.map((id) => CHANNEL_PREFIX + id));
        // A re-attach meanwhile queued its own SUBSCRIBE, which Redis runs after this one.
        for (const id of chunk) if (!this.pendingSubscribe.has(id) && !this.inFlight.has(id)) this.subscribed.delete(id);
      } catch (err) {
        this.logger.error(`unsubscribing ${chunk.length} device channel(s) failed: ${String(err)}`);
        for (const id of chunk) if (!this.counts.has(id)) this.pendingUnsubscribe.add(id);
      } finally {
        for (const id of chunk) this.unsubscribing.delete(id);
      }
    }
    if (this.pendingUnsubscribe.size > 0 || this.pendingSubscribe.size > 0) this.schedule();
  }
}
