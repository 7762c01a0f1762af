import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../../infra/http/domain.exception.js';

export enum EnrollmentErrorCode {
  /** The batch holding the request could not be committed (nothing of it was written), or the queue is full: retry. */
  EnrollmentUnavailable = 'enrollment-unavailable',
}

const status: Record<EnrollmentErrorCode, HttpStatus> = {
  [EnrollmentErrorCode.EnrollmentUnavailable]: HttpStatus.SERVICE_UNAVAILABLE,
};

export class EnrollmentException extends DomainException<EnrollmentErrorCode> {
  constructor(code: EnrollmentErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
