import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | undefined;

/** V8 shrinks the young generation at a full GC only when allocation over the last 5 s was low. */
export const QUIET_BEFORE_GC_MS = 6_000;

/** Between the two collections: the second must see a low but non-zero allocation rate. */
export const SECOND_GC_AFTER_MS = 1_000;

/**
 * One full garbage collection. `--expose-gc` set at run time makes `gc` available to contexts
 * created afterwards (the agent is not started with the flag).
 */
export function fullGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/**
 * Gives memory back after a burst of allocation (start-up, an update). V8 grows the young
 * generation (to 2 x 8-16 MB) during a burst and shrinks it only at a full collection that sees a
 * low allocation rate over its last seconds, which an idle agent, allocating almost nothing, may
 * never run by itself: measured, that kept ≈ 7-16 MB of RSS for good (test/bench/agent-memory).
 * So once the agent has been quiet for `delayMs`, one full GC, and a second one SECOND_GC_AFTER_MS
 * later, which sees the quiet rate and shrinks; bursts in between push it all back.
 */
export class HeapCompactor {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delayMs = QUIET_BEFORE_GC_MS,
    private readonly gc: () => void = fullGc,
  ) {}

  schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.gc();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.gc();
      }, SECOND_GC_AFTER_MS).unref();
    }, this.delayMs).unref(); // never what keeps the process alive
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
