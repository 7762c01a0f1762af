import { describe, expect, it } from '@jest/globals';
import { firstValueFrom, take, toArray } from 'rxjs';
import { fleetSummaryStream, nextDelayMs } from './fleet-stream.service.js';

describe('fleetSummaryStream', () => {
  it('polls while subscribed and shares one poll among subscribers', async () => {
    let calls = 0;
    const stream = fleetSummaryStream(
      async () => ++calls,
      { intervalMs: 20, maxLoad: 1 },
      () => undefined,
    );
    const [a, b] = await Promise.all([firstValueFrom(stream.pipe(take(3), toArray())), firstValueFrom(stream.pipe(take(3), toArray()))]);
    expect(a).toEqual([1, 2, 3]);
    expect(b).toEqual([1, 2, 3]);
    expect(calls).toBe(3);
  });

  it('skips a failed poll without ending the stream and reports the error', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const stream = fleetSummaryStream(
      async () => {
        calls += 1;
        if (calls === 2) throw new Error('database restarting');
        return calls;
      },
      { intervalMs: 10, maxLoad: 1 },
      (err) => errors.push(err),
    );
    await expect(firstValueFrom(stream.pipe(take(2), toArray()))).resolves.toEqual([1, 3]);
    expect(errors).toHaveLength(1);
  });

  it('stops polling when the last subscriber leaves and gives a late subscriber the latest value at once', async () => {
    let calls = 0;
    const stream = fleetSummaryStream(
      async () => ++calls,
      { intervalMs: 30, maxLoad: 1 },
      () => undefined,
    );
    const subscription = stream.subscribe();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(firstValueFrom(stream)).resolves.toBe(1);
    subscription.unsubscribe();
    const after = calls;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).toBe(after);
  });

  it('never overlaps a slow poll with the next tick', async () => {
    let running = 0;
    let maxRunning = 0;
    const stream = fleetSummaryStream(
      async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 35));
        running -= 1;
        return running;
      },
      { intervalMs: 5, maxLoad: 1 },
      () => undefined,
    );
    await firstValueFrom(stream.pipe(take(3), toArray()));
    expect(maxRunning).toBe(1);
  });
});

describe('nextDelayMs', () => {
  const pacing = { intervalMs: 2000, maxLoad: 0.2 };

  it('keeps the interval between starts for fast runs', () => {
    expect(nextDelayMs(50, pacing)).toBe(1950);
    expect(nextDelayMs(0, pacing)).toBe(2000);
  });

  it('stretches the period so slow runs use at most maxLoad of the time', () => {
    // 1 s runs: one every 5 s, i.e. 4 s of rest.
    expect(nextDelayMs(1000, pacing)).toBe(4000);
    expect(nextDelayMs(400, pacing)).toBe(1600);
  });
});
