import type { StateStore } from '../storage/store.js';

export interface OutboxItem {
  topic: string;
  /** JSON text of the payload. */
  payload: string;
  seq: number;
  /** Drop count this message carries; if it is evicted in turn, the count moves on to the next one. */
  carried?: number;
}

interface OutboxDoc {
  nextSeq: number;
  dropped: number;
  items: OutboxItem[];
}

/** One message to queue: its topic, and its payload built once its seq (and the drop count it carries) is known. */
export interface OutboxMessage {
  topic: string;
  build: (seq: number, dropped: number) => unknown;
}

export interface OutboxOptions {
  maxItems: number;
  maxBytes: number;
}

/**
 * Durable, bounded, ordered queue of outgoing QoS1 messages with the per-stream sequence counter.
 * Every message goes through it, online or not: it is persisted first, then published; an item
 * leaves only after the broker's PUBACK. Messages produced while offline therefore survive a
 * restart and are flushed in order on reconnect. When full, the oldest items go first and are
 * counted in `dropped` (telemetry reports that count).
 */
export class Outbox {
  private doc: OutboxDoc = { nextSeq: 0, dropped: 0, items: [] };
  private bytes = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private loaded = false;

  constructor(
    private readonly store: StateStore,
    private readonly key: string,
    private readonly opts: OutboxOptions,
  ) {}

  /** Serialises every mutation so that seq order equals queue order equals disk order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async ensureLoaded(): Promise<void> {
    if (this.loaded) return;
    const doc = await this.store.read<OutboxDoc>(this.key);
    if (doc) this.doc = { nextSeq: doc.nextSeq ?? 0, dropped: doc.dropped ?? 0, items: doc.items ?? [] };
    this.bytes = this.doc.items.reduce((n, i) => n + i.payload.length, 0);
    this.loaded = true;
  }

  get size(): number {
    return this.doc.items.length;
  }

  get droppedTotal(): number {
    return this.doc.dropped;
  }

  /** Assigns the next seq, lets the caller build the message with it, and persists it. */
  async enqueue(topic: string, build: (seq: number, dropped: number) => unknown): Promise<OutboxItem> {
    const [item] = await this.enqueueAll([{ topic, build }]);
    return item!;
  }

  /**
   * Queues several messages as one step: consecutive seqs in the given order, one write. Messages
   * that belong together (the intervals one telemetry tick closes) must not be enqueued one await
   * at a time: another producer's message could take a seq between them, and the seqs would no
   * longer follow the order of what they describe. The drop count so far rides on the first one.
   */
  enqueueAll(messages: ReadonlyArray<OutboxMessage>): Promise<OutboxItem[]> {
    return this.exclusive(async () => {
      await this.ensureLoaded();
      const items: OutboxItem[] = [];
      for (const { topic, build } of messages) {
        const seq = this.doc.nextSeq++;
        const dropped = this.doc.dropped;
        this.doc.dropped = 0;
        const item: OutboxItem = { topic, payload: JSON.stringify(build(seq, dropped)), seq, ...(dropped > 0 ? { carried: dropped } : {}) };
        this.doc.items.push(item);
        this.bytes += item.payload.length;
        items.push(item);
      }
      while (this.doc.items.length > 1 && (this.doc.items.length > this.opts.maxItems || this.bytes > this.opts.maxBytes)) {
        const old = this.doc.items.shift()!;
        this.bytes -= old.payload.length;
        this.doc.dropped += 1 + (old.carried ?? 0);
      }
      if (items.length > 0) await this.store.write(this.key, this.doc);
      return items;
    });
  }

  /**
   * Publishes queued items in order, removing each after it is acknowledged. Stops at the first
   * failure (e.g. the connection dropped); the rest stays queued for the next flush.
   */
  flush(publish: (item: OutboxItem) => Promise<void>): Promise<number> {
    return this.exclusive(async () => {
      await this.ensureLoaded();
      let sent = 0;
      while (this.doc.items.length > 0) {
        const item = this.doc.items[0]!;
        try {
          await publish(item);
        } catch {
          break;
        }
        this.doc.items.shift();
        this.bytes -= item.payload.length;
        sent++;
        // Persist in batches: a crash re-sends at most a batch, which QoS1 (at least once) allows anyway.
        if (sent % 50 === 0) await this.store.write(this.key, this.doc);
      }
      if (sent % 50 !== 0) await this.store.write(this.key, this.doc);
      return sent;
    });
  }

  pending(): Promise<OutboxItem[]> {
    return this.exclusive(async () => {
      await this.ensureLoaded();
      return [...this.doc.items];
    });
  }
}
