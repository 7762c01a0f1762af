import { performance } from 'node:perf_hooks';
import type { ShadowDirective, ShadowReport } from '@fleetline/protocol';
import type { ModelRuntime } from '../runtime/model-runtime.js';
import { predictionOf, type Prediction } from './prediction.js';
import { ShadowStats } from './shadow-stats.js';

export interface ShadowSessionOptions {
  model: string;
  /** The candidate version. */
  version: string;
  rolloutId?: string;
  directive: ShadowDirective;
  /** The candidate, loaded. The session unloads it when it ends. */
  runtime: ModelRuntime;
  /** Mirrored inputs waiting for the candidate; one more is dropped and counted. */
  maxQueue?: number;
  /** Candidate inferences running at once. */
  concurrency?: number;
  random?: () => number;
  now?: () => number;
  log?: (msg: string) => void;
}

export type ShadowEndReason = 'samples' | 'time' | 'withdrawn' | 'stopped';

interface Mirrored {
  input: unknown;
  active: Prediction | undefined;
}

/**
 * One candidate evaluated beside the active version of a model. `offer` is called on the
 * application's request path, so it only samples and enqueues: it never waits, and when the
 * bounded queue is full the input is dropped and counted. The candidate runs from the queue on
 * later turns of the event loop. The session ends at the directive's sample count or time limit
 * (or when told), unloads the candidate, and its last interval says `ended`.
 */
export class ShadowSession {
  readonly model: string;
  readonly version: string;
  readonly rolloutId: string | undefined;
  private readonly queue: Mirrored[] = [];
  private readonly maxQueue: number;
  private readonly concurrency: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly deadline: number;
  private running = 0;
  /** Mirrored inputs taken for the candidate over the whole session (queued, running or done). */
  private taken = 0;
  private stats = new ShadowStats();
  private timer: NodeJS.Timeout | undefined;
  private ended_: ShadowEndReason | undefined;
  private endReported = false;
  private unloading: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: ShadowSessionOptions) {
    this.model = opts.model;
    this.version = opts.version;
    this.rolloutId = opts.rolloutId;
    this.maxQueue = opts.maxQueue ?? 256;
    this.concurrency = opts.concurrency ?? 1;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.deadline = this.now() + opts.directive.durationSeconds * 1000;
    this.timer = setTimeout(() => this.end('time'), opts.directive.durationSeconds * 1000);
    this.timer.unref();
  }

  get ended(): ShadowEndReason | undefined {
    return this.ended_;
  }

  /** Whether the session still takes inputs (the caller may skip building one when not). */
  get accepting(): boolean {
    return this.ended_ === undefined;
  }

  /**
   * An inference the application ran on the active model: its input and what the active model
   * answered. Sampled at the directive's percentage; never throws, never waits.
   */
  offer(input: unknown, active: Prediction | undefined): void {
    if (this.ended_ !== undefined) return;
    if (this.now() >= this.deadline) {
      this.end('time');
      return;
    }
    if (this.random() * 100 >= this.opts.directive.samplePercent) return;
    const max = this.opts.directive.maxSamples;
    if (max !== undefined && this.taken >= max) return;
    this.stats.mirrored++;
    if (this.queue.length >= this.maxQueue) {
      this.stats.dropped++;
      return;
    }
    this.taken++;
    this.queue.push({ input, active });
    if (this.running < this.concurrency) setImmediate(() => this.pump());
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0 && this.ended_ === undefined) {
      const item = this.queue.shift()!;
      this.running++;
      void this.evaluate(item).finally(() => {
        this.running--;
        const max = this.opts.directive.maxSamples;
        if (max !== undefined && this.taken >= max && this.queue.length === 0 && this.running === 0) this.end('samples');
        this.pump();
        this.notifyIdle();
      });
    }
  }

  private async evaluate(item: Mirrored): Promise<void> {
    const infer = this.opts.runtime.infer;
    const started = performance.now();
    let output: unknown;
    let failed = false;
    try {
      if (!infer) throw new Error(`runtime ${this.opts.runtime.name} cannot run inferences`);
      output = await infer.call(this.opts.runtime, item.input);
    } catch {
      failed = true;
    }
    const latency = performance.now() - started;
    // Answers that arrive after the end still count: their time was spent within the shadow.
    this.stats.record(latency, failed ? undefined : predictionOf(output), failed, item.active);
  }

  /** Ends the shadow (idempotent): nothing more is taken; the candidate is unloaded once running inferences are done. */
  end(reason: ShadowEndReason): void {
    if (this.ended_ !== undefined) return;
    this.ended_ = reason;
    clearTimeout(this.timer);
    this.queue.length = 0;
    this.opts.log?.(`shadow of ${this.model}@${this.version} ended (${reason})`);
    this.unloading = this.whenIdle()
      .then(() => this.opts.runtime.unload())
      .catch((err: unknown) => this.opts.log?.(`shadow unload ${this.model}@${this.version}: ${String(err)}`));
  }

  /** Resolves once the candidate is unloaded (after `end`). */
  async closed(): Promise<void> {
    await this.unloading;
  }

  /** Resolves when no candidate inference is queued or running. */
  async whenIdle(): Promise<void> {
    if (this.running === 0 && (this.queue.length === 0 || this.ended_ !== undefined)) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.running !== 0 || (this.queue.length > 0 && this.ended_ === undefined)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Closes the interval: the report for it, or undefined when there is nothing to say. The
   * interval in which the session ended reports `ended` once, even when it counted nothing, so
   * the control plane learns the shadow is over.
   */
  takeInterval(): ShadowReport | undefined {
    const stats = this.stats;
    this.stats = new ShadowStats();
    const ended = this.ended_ !== undefined && !this.endReported;
    if (ended) this.endReported = true;
    if (stats.isEmpty() && !ended) return undefined;
    return stats.report(this.version, this.rolloutId, ended);
  }

  /** The session ended and its last interval was reported: the owner may forget it. */
  get finished(): boolean {
    return this.endReported;
  }
}
