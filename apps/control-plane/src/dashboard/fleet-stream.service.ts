import { Injectable, Logger } from '@nestjs/common';
import { Observable, shareReplay } from 'rxjs';
import { type FleetSummary, FleetService } from '../fleet/fleet.service.js';

/** Milliseconds between two fleet summaries pushed to the overview page. */
export const FLEET_STREAM_INTERVAL_MS = 2_000;
/**
 * Largest share of the time the database may spend on the summary for the stream. The summary
 * reads running counts (a few rows per model version), so this only matters when the database
 * itself is slow to answer: the stream then slows down rather than keep a database core busy.
 */
export const FLEET_STREAM_MAX_LOAD = 0.2;

/**
 * One fleet summary every 2 s (FleetService, the same numbers as GET /api/v1/fleet/summary), shared
 * by every open overview page: the database answers once per tick however many people watch, and
 * not at all when nobody does (refCount).
 */
@Injectable()
export class FleetStreamService {
  private readonly logger = new Logger('FleetStream');
  private lastErrorLoggedAt = 0;

  readonly summaries$: Observable<FleetSummary>;

  constructor(private readonly fleet: FleetService) {
    this.summaries$ = fleetSummaryStream(
      () => this.fleet.summary(),
      { intervalMs: FLEET_STREAM_INTERVAL_MS, maxLoad: FLEET_STREAM_MAX_LOAD },
      (err) => this.logFailure(err),
    );
  }

  private logFailure(err: unknown): void {
    // A database outage would otherwise log every 2 s per replica.
    const now = Date.now();
    if (now - this.lastErrorLoggedAt < 60_000) return;
    this.lastErrorLoggedAt = now;
    this.logger.warn(`fleet summary failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Runs `load` while subscribed: one run starts `intervalMs` after the previous one started, or
 * later when a run took long, so that loading takes at most `maxLoad` of the time. Runs never
 * overlap; a failed run is reported and skipped without ending the stream; a new subscriber gets
 * the latest value at once; the last unsubscribe stops the loop.
 */
export function fleetSummaryStream<T>(load: () => Promise<T>, pacing: { intervalMs: number; maxLoad: number }, onError: (err: unknown) => void): Observable<T> {
  return new Observable<T>((subscriber) => {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const run = async (): Promise<void> => {
      const started = Date.now();
      try {
        const value = await load();
        if (!stopped) subscriber.next(value);
      } catch (err) {
        onError(err);
      }
      if (stopped) return;
      const elapsed = Date.now() - started;
      timer = setTimeout(() => void run(), nextDelayMs(elapsed, pacing));
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }).pipe(shareReplay({ bufferSize: 1, refCount: true }));
}

/** Pause after a run of `elapsedMs`: the rest of the interval, stretched so runs stay under maxLoad. */
export function nextDelayMs(elapsedMs: number, pacing: { intervalMs: number; maxLoad: number }): number {
  const period = Math.max(pacing.intervalMs, elapsedMs / pacing.maxLoad);
  return Math.max(0, period - elapsedMs);
}
