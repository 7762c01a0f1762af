export interface TelemetryBatcherOptions {
  /** Largest batch handed to the writer. */
  maxBatch: number;
  /** Most items held in memory (queued + being written); beyond it submit() waits for room. */
  maxQueue: number;
  /** Longest an item waits before a partial batch is written. */
  maxDelayMs: number;
  /**
   * Batches written at once (default 1). Two let the database work on one batch while this
   * process decodes and encodes the next, instead of each side waiting for the other.
   */
  writers?: number;
}

export type BatchWriter<T> = (batch: T[]) => Promise<void>;

/** submit() after close(): the item was not taken, so it must not be acknowledged. */
export class BatcherClosedError extends Error {
  constructor() {
    super('ingest is shutting down');
  }
}

interface Entry<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Bounded in-memory group commit with at most `writers` batches being written at a time. submit() answers a promise that
 * resolves when the batch holding the item has been written (committed) and rejects with the
 * writer's error when it could not be: callers acknowledge a message only then (commit before ack).
 * Items accumulate while a batch is being written, so the batch size adapts to the write latency
 * (bigger batches under load, which is what makes set-based writes cheap per row). A full queue
 * makes submit() wait for room (back-pressure on the sender) instead of dropping or growing.
 */
export class TelemetryBatcher<T> {
  private queue: Entry<T>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly lanes = new Set<Promise<void>>();
  private readonly writers: number;
  private closed = false;
  private roomWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly options: TelemetryBatcherOptions,
    private readonly write: BatchWriter<T>,
    private readonly onError: (err: unknown, failed: number) => void,
  ) {
    if (options.maxBatch < 1 || options.maxQueue < options.maxBatch) throw new Error('maxQueue must be >= maxBatch >= 1');
    this.writers = Math.max(1, options.writers ?? 1);
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Items queued or being written. */
  get size(): number {
    return this.queue.length + this.inFlight;
  }

  /** Submitters waiting for room in a full queue. */
  get waiting(): number {
    return this.roomWaiters.length;
  }

  /**
   * Queues one item; resolves once it is written, rejects if its batch failed or the batcher is
   * closed. Waits (without queueing) while the queue is full.
   */
  async submit(item: T): Promise<void> {
    while (!this.closed && this.size >= this.options.maxQueue) {
      await new Promise<void>((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
    }
    if (this.closed) throw new BatcherClosedError();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.options.maxBatch) this.kick();
      else if (!this.timer && this.lanes.size < this.writers) this.arm();
    });
  }

  /** Writes everything queued so far; resolves when every batch has settled (written or failed). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.lanes.size > 0) {
      this.kick();
      await Promise.all([...this.lanes]);
    }
  }

  /** Refuses new items (and those waiting for room) and writes what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w.reject(new BatcherClosedError());
    await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setTimeout(() => this.kick(), this.options.maxDelayMs);
    this.timer.unref();
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.lanes.size < this.writers && this.queue.length > 0) {
      const lane: Promise<void> = this.drain().finally(() => {
        this.lanes.delete(lane);
        // Items that arrived during the last write but did not fill a batch still need a deadline.
        if (this.queue.length > 0 && !this.timer) this.arm();
      });
      this.lanes.add(lane);
    }
  }

  private async drain(): Promise<void> {
    // Keep writing while full batches are waiting: under load there is no reason to wait.
    do {
      const batch = this.queue.splice(0, this.options.maxBatch);
      if (batch.length === 0) return;
      this.inFlight += batch.length;
      let failure: { err: unknown } | undefined;
      try {
        await this.write(batch.map((e) => e.item));
      } catch (err) {
        failure = { err };
        this.onError(err, batch.length);
      } finally {
        this.inFlight -= batch.length;
      }
      if (failure) for (const e of batch) e.reject(failure.err);
      else for (const e of batch) e.resolve();
      this.wakeWaiters();
    } while (this.queue.length >= this.options.maxBatch || (this.closed && this.queue.length > 0));
  }

  /** Lets as many waiting submitters in as there is room now (each re-checks when it runs). */
  private wakeWaiters(): void {
    const room = this.options.maxQueue - this.size;
    if (room <= 0 || this.roomWaiters.length === 0) return;
    for (const w of this.roomWaiters.splice(0, room)) w.resolve();
  }
}
