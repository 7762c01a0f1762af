import { describe, expect, it } from '@jest/globals';
import { TelemetryBatcher } from './telemetry-batcher.js';

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('TelemetryBatcher', () => {
  it('writes a full batch at once and a partial batch after the delay', async () => {
    const batches: number[][] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 3, maxQueue: 10, maxDelayMs: 30 },
      async (batch) => void batches.push(batch),
      () => undefined,
    );
    for (const i of [1, 2, 3, 4]) expect(b.offer(i)).toBe(true);
    await tick();
    expect(batches).toEqual([[1, 2, 3]]);
    await tick(60);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it('refuses items beyond maxQueue while a write is slow, and keeps writing one batch at a time', async () => {
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
    const accepted = [1, 2, 3, 4, 5, 6].map((i) => b.offer(i));
    expect(accepted).toEqual([true, true, true, true, false, false]);
    expect(b.size).toBe(4);
    const flushed = b.flush();
    for (let i = 0; i < 3; i++) {
      await tick(1);
      release();
    }
    await flushed;
    expect(written).toEqual([1, 2, 3, 4]);
    expect(maxConcurrent).toBe(1);
    expect(b.size).toBe(0);
  });

  it('reports a failed batch as lost and continues', async () => {
    const lost: number[] = [];
    const ok: number[] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 2, maxQueue: 10, maxDelayMs: 5 },
      async (batch) => {
        if (batch.includes(1)) throw new Error('db down');
        ok.push(...batch);
      },
      (_err, n) => void lost.push(n),
    );
    [1, 2, 3].forEach((i) => b.offer(i));
    await b.flush();
    expect(lost).toEqual([2]);
    expect(ok).toEqual([3]);
  });

  it('flushes on close and refuses afterwards', async () => {
    const written: number[] = [];
    const b = new TelemetryBatcher<number>(
      { maxBatch: 100, maxQueue: 1000, maxDelayMs: 10_000 },
      async (batch) => void written.push(...batch),
      () => undefined,
    );
    b.offer(1);
    b.offer(2);
    await b.close();
    expect(written).toEqual([1, 2]);
    expect(b.offer(3)).toBe(false);
  });
});
