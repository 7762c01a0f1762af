import { describe, expect, it } from '@jest/globals';
import { GroupCommitQueue, GroupCommitRefused } from './group-commit-queue.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommitQueue', () => {
  it('answers each item with its own result and never commits more than maxBatch at once', async () => {
    const batches: number[][] = [];
    const queue = new GroupCommitQueue<number, string>({ maxBatch: 4, maxDelayMs: 1, maxQueue: 100 }, async (batch) => {
      batches.push([...batch]);
      await tick();
      return batch.map((n) => `r${n}`);
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => queue.submit(i)));
    expect(results).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    expect(batches.flat()).toEqual(Array.from({ length: 10 }, (_, i) => i));
    for (const b of batches) expect(b.length).toBeLessThanOrEqual(4);
    expect(batches.length).toBeGreaterThanOrEqual(3);
  });

  it('runs one commit at a time; items that arrive meanwhile form the next batch', async () => {
    let active = 0;
    let maxActive = 0;
    const batches: number[][] = [];
    let release!: () => void;
    const firstHeld = new Promise<void>((resolve) => (release = resolve));
    const queue = new GroupCommitQueue<number, number>({ maxBatch: 100, maxDelayMs: 0, maxQueue: 100 }, async (batch) => {
      active++;
      maxActive = Math.max(maxActive, active);
      batches.push([...batch]);
      if (batches.length === 1) await firstHeld;
      active--;
      return [...batch];
    });
    const first = queue.submit(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const later = [queue.submit(2), queue.submit(3), queue.submit(4)];
    release();
    expect(await Promise.all([first, ...later])).toEqual([1, 2, 3, 4]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    expect(maxActive).toBe(1);
  });

  it('fails only the batch whose commit threw', async () => {
    const queue = new GroupCommitQueue<number, number>({ maxBatch: 2, maxDelayMs: 0, maxQueue: 100 }, async (batch) => {
      if (batch.includes(3)) throw new Error('database down');
      return batch.map((n) => n * 10);
    });
    const settled = await Promise.allSettled([1, 2, 3, 4, 5, 6].map((n) => queue.submit(n)));
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([10, 20, 'database down', 'database down', 50, 60]);
  });

  it('fails a batch whose commit answered the wrong number of results', async () => {
    const queue = new GroupCommitQueue<number, number>({ maxBatch: 10, maxDelayMs: 0, maxQueue: 100 }, async () => [1]);
    await expect(Promise.all([queue.submit(1), queue.submit(2)])).rejects.toThrow('1 results for a batch of 2');
  });

  it('yields to the event loop between two batches', async () => {
    const events: string[] = [];
    const queue = new GroupCommitQueue<number, number>({ maxBatch: 1, maxDelayMs: 0, maxQueue: 100 }, async (batch) => {
      events.push(`commit ${batch[0]}`);
      // Other work becomes ready while this batch commits; it must run before the next batch.
      if (batch[0] === 1) setImmediate(() => events.push('other work'));
      return [...batch];
    });
    await Promise.all([queue.submit(1), queue.submit(2)]);
    expect(events).toEqual(['commit 1', 'other work', 'commit 2']);
  });

  it('refuses items past maxQueue and after close, and close commits what was queued', async () => {
    const committed: number[] = [];
    const queue = new GroupCommitQueue<number, number>({ maxBatch: 10, maxDelayMs: 10_000, maxQueue: 2 }, async (batch) => {
      committed.push(...batch);
      return [...batch];
    });
    const a = queue.submit(1);
    const b = queue.submit(2);
    await expect(queue.submit(3)).rejects.toEqual(new GroupCommitRefused('queue-full'));
    expect(queue.waiting).toBe(2);
    await queue.close();
    expect(await Promise.all([a, b])).toEqual([1, 2]);
    expect(committed).toEqual([1, 2]);
    await expect(queue.submit(4)).rejects.toMatchObject({ reason: 'closed' });
  });

  it('validates its options', () => {
    expect(() => new GroupCommitQueue({ maxBatch: 0, maxDelayMs: 1, maxQueue: 1 }, async () => [])).toThrow();
  });
});
