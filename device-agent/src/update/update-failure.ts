import type { FailureCode } from '@fleetline/protocol';

/** A step failed for a reason the report should name. Anything else thrown by a step counts as `internal`. */
export class UpdateFailure extends Error {
  constructor(
    readonly code: FailureCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpdateFailure';
  }
}

export function failureOf(err: unknown, fallback: FailureCode = 'internal'): { code: FailureCode; message: string } {
  if (err instanceof UpdateFailure) return { code: err.code, message: err.message.slice(0, 2000) };
  const message = err instanceof Error ? err.message : String(err);
  return { code: fallback, message: message.slice(0, 2000) };
}
