import { describe, expect, it, jest } from '@jest/globals';
import { HeapCompactor, SECOND_GC_AFTER_MS } from './heap-compactor.js';

describe('HeapCompactor', () => {
  it('collects twice, delayMs after the last of a burst of schedules, and not after stop', () => {
    jest.useFakeTimers();
    try {
      const gc = jest.fn();
      const c = new HeapCompactor(1000, gc);
      c.schedule();
      jest.advanceTimersByTime(600);
      c.schedule(); // another update step: pushed back
      jest.advanceTimersByTime(600);
      expect(gc).not.toHaveBeenCalled();
      jest.advanceTimersByTime(400);
      expect(gc).toHaveBeenCalledTimes(1);
      jest.advanceTimersByTime(SECOND_GC_AFTER_MS);
      expect(gc).toHaveBeenCalledTimes(2);
      jest.advanceTimersByTime(10_000);
      expect(gc).toHaveBeenCalledTimes(2);
      c.schedule();
      c.stop();
      jest.advanceTimersByTime(10_000);
      expect(gc).toHaveBeenCalledTimes(2);
    } finally {
      jest.useRealTimers();
    }
  });
});
