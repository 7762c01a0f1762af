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
});
