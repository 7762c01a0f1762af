import type { ByteRange } from '../models/artifact-store/artifact-store.js';

export type RangeDecision = { kind: 'full' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * Decides how to answer a `Range` header for a representation of `size` bytes (RFC 9110 §14.2).
 * One range is served (206); a header that is malformed, uses another unit or asks for several
 * ranges is ignored and the whole file is sent (200), which §14.2 allows. A range starting at or
 * past the end, or an empty suffix, is unsatisfiable (416, §15.5.17).
 */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return { kind: 'full' };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    // Suffix range: the last N bytes (§14.1.2).
    const suffix = Number(last);
    if (!Number.isSafeInteger(suffix)) return { kind: 'full' };
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start)) return { kind: 'full' };
  const requestedEnd = last === '' ? Number.MAX_SAFE_INTEGER : Number(last);
  if (requestedEnd < start) return { kind: 'full' }; // invalid range-spec: ignore the header
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = Number.isSafeInteger(requestedEnd) ? Math.min(requestedEnd, size - 1) : size - 1;
  return { kind: 'partial', range: { start, end } };
}
