import { describe, expect, it } from '@jest/globals';
import { TrafficWheel } from './traffic-wheel.js';

describe('TrafficWheel', () => {
  it('visits every member exactly once per period, spread over the slots', () => {
    const visits: string[][] = [];
    let current: string[] = [];
    const wheel = new TrafficWheel<string>(
      (m, seconds) => {
        expect(seconds).toBe(1);
        current.push(m);
      },
      1000,
      4,
    );
    for (const m of ['a', 'b', 'c', 'd', 'e', 'f']) wheel.add(m);
    for (let tick = 0; tick < 8; tick++) {
      current = [];
      wheel.step();
      visits.push(current);
    }
    wheel.stop();
    // Round-robin: slot 0 = a, e; slot 1 = b, f; slot 2 = c; slot 3 = d. Two periods.
    expect(visits).toEqual([['a', 'e'], ['b', 'f'], ['c'], ['d'], ['a', 'e'], ['b', 'f'], ['c'], ['d']]);
  });

  it('adds idempotently and forgets deleted members', () => {
    const seen: number[] = [];
    const wheel = new TrafficWheel<number>((m) => seen.push(m), 1000, 2);
    wheel.add(1);
    wheel.add(1);
    wheel.add(2);
    expect(wheel.size).toBe(2);
    wheel.delete(1);
    wheel.step();
    wheel.step();
    wheel.stop();
    expect(seen).toEqual([2]);
    expect(wheel.size).toBe(1);
  });
});
