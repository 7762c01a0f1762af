import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decideRange } from './byte-range.js';

/**
 * Property-based fuzzing of the HTTP Range parser (security issue #11): whatever a client sends,
 * decideRange never throws and only ever answers a range inside the file.
 */
const RUNS = { numRuns: 2000 };
const size = fc.oneof(fc.nat(10), fc.nat(1_000_000), fc.maxSafeNat());

const hostileHeader = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc
    .tuple(
      fc.constantFrom('bytes', 'BYTES', ' bytes ', 'items', ''),
      fc.constantFrom('=', ' = ', ''),
      fc.string({ unit: fc.constantFrom(...'0123456789-, e+.x'), maxLength: 40 }),
    )
    .map(([u, eq, spec]) => `${u}${eq}${spec}`),
  fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.bigInt({ min: 0n, max: 10n ** 30n })).map(([a, b]) => `bytes=${a}-${b}`),
);

describe('decideRange (fuzzed)', () => {
  it('never throws and answers full, unsatisfiable or a range inside the file', () => {
    fc.assert(
      fc.property(fc.option(hostileHeader, { nil: undefined }), size, (header, n) => {
        const d = decideRange(header, n);
        expect(['full', 'partial', 'unsatisfiable']).toContain(d.kind);
        if (d.kind === 'partial') {
          expect(Number.isSafeInteger(d.range.start) && Number.isSafeInteger(d.range.end)).toBe(true);
          expect(d.range.start).toBeGreaterThanOrEqual(0);
          expect(d.range.start).toBeLessThanOrEqual(d.range.end);
          expect(d.range.end).toBeLessThan(n);
        }
      }),
      RUNS,
    );
  });

  it('serves exactly the valid ranges it is asked for (round trip)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.nat(), fc.nat(), (n, a, len) => {
        const start = a % n;
        const end = start + len;
        expect(decideRange(`bytes=${start}-${end}`, n)).toEqual({ kind: 'partial', range: { start, end: Math.min(end, n - 1) } });
        expect(decideRange(`bytes=${start}-`, n)).toEqual({ kind: 'partial', range: { start, end: n - 1 } });
        if (len > 0) expect(decideRange(`bytes=-${len}`, n)).toEqual({ kind: 'partial', range: { start: Math.max(0, n - len), end: n - 1 } });
        expect(decideRange(`bytes=${n + a}-`, n)).toEqual({ kind: 'unsatisfiable' });
      }),
      RUNS,
    );
  });
});
