import { describe, expect, it } from '@jest/globals';
import { BatcherClosedError, TelemetryBatcher } from './telemetry-batcher.js';

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Settlement of a promise, observable without awaiting it. */
function watch(p: Promise<void>): { state: () => 'pending' | 'resolved' | 'rejected'; error: () => unknown } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  let error: unknown;
  p.then(
    () => (state = 'resolved'),
    (err: unknown) => {
      state = 'rejected';
      error = err;
    },
  );
  return { state: () => state, error: () => error };
}

describe('TelemetryBatcher', () => {
  it('writes a full batch at once and a partial batch after the delay, resolving each item once its batch is written', async () => {
    const batches: number[][] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 3, maxQueue: 10, maxDelayMs: 30 },
      async (batch) => void batches.push(batch),
      () => undefined,
    );
    const items = [1, 2, 3, 4].map((i) => watch(b.submit(i)));
    await tick(5);
    expect(batches).toEqual([[1, 2, 3]]);
    expect(items.map((i) => i.state())).toEqual(['resolved', 'resolved', 'resolved', 'pending']);
    await tick(60);
    expect(batches).toEqual([[1, 2, 3], [4]]);
    expect(items[3]!.state()).toBe('resolved');
  });

  it('does not resolve an item before its write has finished', async () => {
    let release!: () => void;
    const b = new TelemetryBatcher<number>(
      { maxBatch: 1, maxQueue: 10, maxDelayMs: 1 },
      () => new Promise<void>((resolve) => (release = resolve)),
      () => undefined,
    );
    const item = watch(b.submit(1));
    await tick(10);
    expect(item.state()).toBe('pending');
    release();
    await tick(1);
    expect(item.state()).toBe('resolved');
  });

  it('makes submitters wait for room while a write is slow (nothing dropped), and writes one batch at a time', async () => {
    let release!: () => void;
    let concurrent = 0;
    let maxConcurrent = 0;
    const written: number[] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 2, maxQueue: 4, maxDelayMs: 5 },
      async (batch) => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await new Promise<void>((resolve) => (release = resolve));
        written.push(...batch);
        concurrent--;
      },
      () => undefined,
    );
    const items = [1, 2, 3, 4, 5, 6].map((i) => watch(b.submit(i)));
    await tick(1);
    expect(b.size).toBe(4);
    expect(b.waiting).toBe(2);
    for (let i = 0; i < 3; i++) {
      release();
      await tick(10);
    }
    await b.flush();
    expect(written).toEqual([1, 2, 3, 4, 5, 6]);
    expect(items.every((i) => i.state() === 'resolved')).toBe(true);
    expect(maxConcurrent).toBe(1);
    expect(b.size).toBe(0);
  });

  it('writes up to `writers` batches at once', async () => {
    const release: (() => void)[] = [];
    let concurrent = 0;
    let most = 0;
    const b = new TelemetryBatcher<number>(
      { maxBatch: 2, maxQueue: 100, maxDelayMs: 1, writers: 2 },
      async () => {
        concurrent++;
        most = Math.max(most, concurrent);
        await new Promise<void>((resolve) => release.push(resolve));
        concurrent--;
      },
      () => undefined,
    );
    const items = [1, 2, 3, 4, 5, 6].map((i) => watch(b.submit(i)));
    await tick(5);
    expect(concurrent).toBe(2);
    while (items.some((i) => i.state() === 'pending')) {
      release.splice(0).forEach((r) => r());
      await tick(5);
    }
    expect(most).toBe(2);
    expect(b.size).toBe(0);
  });

  it('rejects every item of a failed batch with its error and goes on with the next batch', async () => {
    const failed: number[] = [];
    const ok: number[] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 2, maxQueue: 10, maxDelayMs: 5 },
      async (batch) => {
        if (batch.includes(1)) throw new Error('db down');
        ok.push(...batch);
      },
      (_err, n) => void failed.push(n),
    );
    const items = [1, 2, 3].map((i) => watch(b.submit(i)));
    await b.flush();
    await tick(1);
    expect(failed).toEqual([2]);
    expect(ok).toEqual([3]);
    expect(items.map((i) => i.state())).toEqual(['rejected', 'rejected', 'resolved']);
    expect(String(items[0]!.error())).toContain('db down');
  });

  it('writes what is queued on close, and refuses afterwards and those still waiting for room', async () => {
    const written: number[] = [];
    let release!: () => void;
    const b = new TelemetryBatcher<number>(
      { maxBatch: 1, maxQueue: 1, maxDelayMs: 10_000 },
      async (batch) => {
        await new Promise<void>((resolve) => (release = resolve));
        written.push(...batch);
      },
      () => undefined,
    );
    const first = watch(b.submit(1));
    const second = watch(b.submit(2));
    await tick(1);
    const closing = b.close();
    release();
    await closing;
    await tick(1);
    expect(written).toEqual([1]);
    expect(first.state()).toBe('resolved');
    expect(second.error()).toBeInstanceOf(BatcherClosedError);
    await expect(b.submit(3)).rejects.toBeInstanceOf(BatcherClosedError);
  });
});
