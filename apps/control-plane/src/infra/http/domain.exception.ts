import { HttpStatus } from '@nestjs/common';

/**
 * Base of the per-feature exceptions (DeviceException, RolloutException, ...). Each feature
 * declares a code enum and the HTTP status of each code; DomainExceptionFilter turns them into
 * `{ statusCode, code, message }` answers.
 */
export abstract class DomainException<Code extends string = string> extends Error {
  protected constructor(
    readonly code: Code,
    message: string,
    readonly status: HttpStatus,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
