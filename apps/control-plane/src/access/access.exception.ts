import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum AccessErrorCode {
  Unauthenticated = 'unauthenticated',
  Forbidden = 'forbidden',
  KeyNotFound = 'api-key-not-found',
}

const status: Record<AccessErrorCode, HttpStatus> = {
  [AccessErrorCode.Unauthenticated]: HttpStatus.UNAUTHORIZED,
  [AccessErrorCode.Forbidden]: HttpStatus.FORBIDDEN,
  [AccessErrorCode.KeyNotFound]: HttpStatus.NOT_FOUND,
};

export class AccessException extends DomainException<AccessErrorCode> {
  constructor(code: AccessErrorCode, message: string) {
    super(code, message, status[code]);
  }
}
