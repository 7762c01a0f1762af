export interface GroupCommitOptions {
  /** Largest batch handed to one commit. */
  maxBatch: number;
  /** How long the first item of an idle queue waits for companions before a commit starts. */
  maxDelayMs: number;
  /** Most items waiting (not counting the batch being committed); beyond it submit() refuses. */
  maxQueue: number;
}

/** Commits a batch; answers one result per item, in the batch's order. Throwing fails every item of the batch. */
export type BatchCommit<In, Out> = (batch: readonly In[]) => Promise<Out[]>;

export type GroupCommitRefusal = 'queue-full' | 'closed';

/** submit() refused an item without committing it. */
export class GroupCommitRefused extends Error {
  constructor(readonly reason: GroupCommitRefusal) {
    super(reason === 'queue-full' ? 'too many requests are waiting to be committed' : 'no longer accepting requests (shutting down)');
    this.name = 'GroupCommitRefused';
  }
}

interface Waiter<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: concurrent callers' items are queued and committed in batches by one committer at
 * a time, and each caller gets its own item's result. A batch is committed when maxBatch items
 * wait, or maxDelayMs after the first of a partial batch arrived. While a batch is being
 * committed, new items queue up for the next one, so the batch size follows the load (one item
 * when idle, up to maxBatch under a burst) and the cost per item of a set-based write falls as
 * load rises.
 *
 * Between two batches the committer yields to the event loop (setImmediate), so I/O callbacks and
 * other work queued for the same database connection (on PGlite: one backend for everything) get
 * their turn instead of waiting behind a whole burst.
 */
export class GroupCommitQueue<In, Out> {
  private queue: Waiter<In, Out>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly options: GroupCommitOptions,
    private readonly commit: BatchCommit<In, Out>,
  ) {
    if (!(options.maxBatch >= 1 && options.maxQueue >= 1 && options.maxDelayMs >= 0))
      throw new Error('group commit: maxBatch and maxQueue must be >= 1, maxDelayMs >= 0');
  }

  /** Items waiting for a batch (not counting the one being committed). */
  get waiting(): number {
    return this.queue.length;
  }

  submit(item: In): Promise<Out> {
    if (this.closed) return Promise.reject(new GroupCommitRefused('closed'));
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new GroupCommitRefused('queue-full'));
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.running) return; // the running committer (or the timer it leaves) picks it up
      if (this.queue.length >= this.options.maxBatch) this.start();
      else if (!this.timer) {
        this.timer = setTimeout(() => this.start(), this.options.maxDelayMs);
        this.timer.unref();
      }
    });
  }

  /** Refuses new items and resolves once everything already queued is committed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.queue.length > 0) this.start();
    await this.running;
  }

  private start(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
      // Items that arrived during the last commit but do not fill a batch wait for companions
      // (maxDelayMs) instead of being committed at once in a batch of one or two: on a busy
      // event loop most concurrent requests are still on their way through the HTTP stack.
      if (this.queue.length >= this.options.maxBatch || (this.closed && this.queue.length > 0)) this.start();
      else if (this.queue.length > 0 && !this.timer) {
        this.timer = setTimeout(() => this.start(), this.options.maxDelayMs);
        this.timer.unref();
      }
    });
  }

  private async run(): Promise<void> {
    do {
      const batch = this.queue.splice(0, this.options.maxBatch);
      if (batch.length === 0) return;
      let results: Out[] | undefined;
      let failure: unknown;
      try {
        results = await this.commit(batch.map((w) => w.item));
        if (results.length !== batch.length) throw new Error(`group commit: ${results.length} results for a batch of ${batch.length}`);
      } catch (err) {
        failure = err;
      }
      if (results && failure === undefined) batch.forEach((w, i) => w.resolve(results[i]!));
      else for (const w of batch) w.reject(failure);
      // A turn of the event loop for everyone else (I/O, other users of the same connection)
      // before the next batch, even while full batches keep waiting.
      await new Promise<void>((resolve) => setImmediate(resolve));
    } while (this.queue.length >= this.options.maxBatch || (this.closed && this.queue.length > 0));
  }
}
