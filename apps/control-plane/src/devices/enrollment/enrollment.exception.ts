import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../../infra/http/domain.exception.js';

export enum EnrollmentErrorCode {
  /** The batch holding the request could not be committed (nothing of it was written), or the queue is full: retry. */
  EnrollmentUnavailable = 'enrollment-unavailable',
  /** The request pins a TUF root (token pin or rootSha256) this control plane never published: nothing was created. */
  RootUnknown = 'enrollment-root-unknown',
}

const status: Record<EnrollmentErrorCode, HttpStatus> = {
  [EnrollmentErrorCode.EnrollmentUnavailable]: HttpStatus.SERVICE_UNAVAILABLE,
  [EnrollmentErrorCode.RootUnknown]: HttpStatus.CONFLICT,
};

export class EnrollmentException extends DomainException<EnrollmentErrorCode> {
  constructor(code: EnrollmentErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
