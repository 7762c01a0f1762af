export interface TelemetryBatcherOptions {
  /** Largest batch handed to the writer. */
  maxBatch: number;
  /** Most items held in memory (queued + being written); beyond it offer() refuses. */
  maxQueue: number;
  /** Longest an item waits before a partial batch is written. */
  maxDelayMs: number;
}

export type BatchWriter<T> = (batch: T[]) => Promise<void>;

/**
 * Bounded in-memory batching with one writer at a time. Items accumulate while a batch is being
 * written, so the batch size adapts to the write latency (bigger batches under load, which is
 * what makes set-based writes cheap per row). When the queue is full, offer() refuses instead of
 * growing memory: the caller counts the drop. The writer must not throw; if it does the batch is
 * reported to `onError` and lost.
 */
export class TelemetryBatcher<T> {
  private queue: T[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly options: TelemetryBatcherOptions,
    private readonly write: BatchWriter<T>,
    private readonly onError: (err: unknown, lost: number) => void,
  ) {
    if (options.maxBatch < 1 || options.maxQueue < options.maxBatch) throw new Error('maxQueue must be >= maxBatch >= 1');
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Items queued or being written. */
  get size(): number {
    return this.queue.length + this.inFlight;
  }

  /** Queues one item; false when the queue is full or the batcher is closed (the item is dropped). */
  offer(item: T): boolean {
    if (this.closed || this.size >= this.options.maxQueue) return false;
    this.queue.push(item);
    if (this.queue.length >= this.options.maxBatch) this.kick();
    else if (!this.timer && !this.draining) {
      this.timer = setTimeout(() => this.kick(), this.options.maxDelayMs);
      this.timer.unref();
    }
    return true;
  }

  /** Writes everything queued so far; resolves when it is written (or reported lost). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.draining) {
      this.kick();
      await this.draining;
    }
  }

  /** Refuses new items and writes what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      // Items that arrived during the last write but did not fill a batch still need a deadline.
      if (this.queue.length > 0 && !this.timer) {
        this.timer = setTimeout(() => this.kick(), this.options.maxDelayMs);
        this.timer.unref();
      }
    });
  }

  private async drain(): Promise<void> {
    // Keep writing while full batches are waiting: under load there is no reason to wait.
    do {
      const batch = this.queue.splice(0, this.options.maxBatch);
      if (batch.length === 0) return;
      this.inFlight = batch.length;
      try {
        await this.write(batch);
      } catch (err) {
        this.onError(err, batch.length);
      } finally {
        this.inFlight = 0;
      }
    } while (this.queue.length >= this.options.maxBatch || (this.closed && this.queue.length > 0));
  }
}
