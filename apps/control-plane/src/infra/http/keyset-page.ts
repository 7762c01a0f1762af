/** Keyset pagination: `{ items, next }`, where `next` is an opaque cursor for `?after=`, null on the last page. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

export function encodeCursor(values: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

/** Returns undefined for a cursor that was not produced by encodeCursor with `arity` values. */
export function decodeCursor(cursor: string, arity: number): (string | number)[] | undefined {
  try {
    const values: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(values) || values.length !== arity) return undefined;
    if (!values.every((v) => typeof v === 'string' || typeof v === 'number')) return undefined;
    return values as (string | number)[];
  } catch {
    return undefined;
  }
}
