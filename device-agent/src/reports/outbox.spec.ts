import { describe, it, expect } from '@jest/globals';
import { MemoryStateStore } from '../storage/store.js';
import { Outbox } from './outbox.js';

describe('Outbox', () => {
  it('assigns increasing seqs and survives a restart with the same store', async () => {
    const store = new MemoryStateStore();
    const a = new Outbox(store, 'o', { maxItems: 10, maxBytes: 10_000 });
    await a.enqueue('t', (seq) => ({ seq }));
    await a.enqueue('t', (seq) => ({ seq }));
    const b = new Outbox(store, 'o', { maxItems: 10, maxBytes: 10_000 });
    const item = await b.enqueue('t', (seq) => ({ seq }));
    expect(item.seq).toBe(2);
    expect((await b.pending()).map((i) => i.seq)).toEqual([0, 1, 2]);
  });

  it('flushes in order and keeps what could not be published', async () => {
    const o = new Outbox(new MemoryStateStore(), 'o', { maxItems: 10, maxBytes: 10_000 });
    for (let i = 0; i < 4; i++) await o.enqueue('t', (seq) => ({ seq }));
    const sent: number[] = [];
    const n = await o.flush(async (item) => {
      if (item.seq === 2) throw new Error('offline');
      sent.push(item.seq);
    });
    expect(n).toBe(2);
    expect(sent).toEqual([0, 1]);
    expect((await o.pending()).map((i) => i.seq)).toEqual([2, 3]);
  });

  it('drops the oldest when full and hands the drop count to the next message', async () => {
    const o = new Outbox(new MemoryStateStore(), 'o', { maxItems: 2, maxBytes: 10_000 });
    for (let i = 0; i < 4; i++) await o.enqueue('t', (seq, dropped) => ({ seq, dropped }));
    expect((await o.pending()).map((i) => i.seq)).toEqual([2, 3]);
    const next = await o.enqueue('t', (seq, dropped) => ({ seq, dropped }));
    // seq 0 and 1 were dropped; the count rode on seq 3/4 and is never lost when its carrier is evicted.
    const carried = (await o.pending()).map((i) => (JSON.parse(i.payload) as { dropped: number }).dropped);
    expect(JSON.parse(next.payload)).toMatchObject({ seq: 4 });
    expect(carried.reduce((a, b) => a + b, 0) + o.droppedTotal).toBe(3);
  });

  it('queues messages that belong together under consecutive seqs in one write, whatever else is queued meanwhile', async () => {
    const store = new CountingStore();
    const o = new Outbox(store, 'o', { maxItems: 10, maxBytes: 10_000 });
    await o.enqueue('t', (seq) => ({ seq, what: 'earlier' }));
    // A flush stuck on an unacknowledged publish (the control plane holds PUBACKs while its database is down):
    // everything queued meanwhile waits behind it, in the order it was queued.
    let release!: () => void;
    const acked = new Promise<void>((resolve) => (release = resolve));
    const flushing = o.flush(() => acked);
    // One telemetry tick closes two intervals (a version switch); the next tick queues its interval before the first tick is stored.
    const tick = o.enqueueAll([
      { topic: 't', build: (seq) => ({ seq, what: 'old build' }) },
      { topic: 't', build: (seq) => ({ seq, what: 'new build' }) },
    ]);
    const nextTick = o.enqueue('t', (seq) => ({ seq, what: 'next interval' }));
    const writesBefore = store.writes;
    release();
    expect((await tick).map((i) => i.seq)).toEqual([1, 2]);
    expect((await nextTick).seq).toBe(3);
    expect(await flushing).toBe(1);
    // The flush's own write, one for the pair, one for the next tick.
    expect(store.writes - writesBefore).toBe(3);
    expect((await o.pending()).map((i) => JSON.parse(i.payload) as unknown)).toEqual([
      { seq: 1, what: 'old build' },
      { seq: 2, what: 'new build' },
      { seq: 3, what: 'next interval' },
    ]);
    // Persisted as one document: a restart sees both or neither.
    const again = new Outbox(store, 'o', { maxItems: 10, maxBytes: 10_000 });
    expect((await again.pending()).map((i) => i.seq)).toEqual([1, 2, 3]);
  });

  it('gives the drop count to the first message of a group and still bounds the queue', async () => {
    const o = new Outbox(new MemoryStateStore(), 'o', { maxItems: 3, maxBytes: 10_000 });
    for (let i = 0; i < 4; i++) await o.enqueue('t', (seq, dropped) => ({ seq, dropped }));
    // Seq 0 made room for seq 3; the group's first message carries that count, and seq 1 to 3 make room for the group.
    const group = await o.enqueueAll([0, 1, 2].map(() => ({ topic: 't', build: (seq: number, dropped: number) => ({ seq, dropped }) })));
    expect(group.map((i) => [i.seq, (JSON.parse(i.payload) as { dropped: number }).dropped])).toEqual([
      [4, 1],
      [5, 0],
      [6, 0],
    ]);
    expect((await o.pending()).map((i) => i.seq)).toEqual([4, 5, 6]);
    const [next] = await o.enqueueAll([{ topic: 't', build: (seq, dropped) => ({ seq, dropped }) }]);
    expect(JSON.parse(next!.payload)).toEqual({ seq: 7, dropped: 3 });
    // Seq 4 made room in turn: its count moved on, none of the five drops is lost.
    const carried = (await o.pending()).map((i) => (JSON.parse(i.payload) as { dropped: number }).dropped);
    expect(carried.reduce((x, y) => x + y, 0) + o.droppedTotal).toBe(5);
    expect(await o.enqueueAll([])).toEqual([]);
  });
});

/** Counts writes, to show a group is persisted in one step. */
class CountingStore extends MemoryStateStore {
  writes = 0;
  override async write(key: string, value: unknown): Promise<void> {
    this.writes++;
    await super.write(key, value);
  }
}
