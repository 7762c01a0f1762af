import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum BrokerAuthErrorCode {
  /** BROKER_AUTH_SECRET is not set: the endpoints are off. */
  Disabled = 'broker-auth-disabled',
  /** The caller did not present the broker secret. */
  Unauthenticated = 'broker-auth-unauthenticated',
  /** The body did not parse (form bodies above the size limit, bad encoding). */
  InvalidInput = 'invalid-input',
}

const status: Record<BrokerAuthErrorCode, HttpStatus> = {
  [BrokerAuthErrorCode.Disabled]: HttpStatus.NOT_FOUND,
  [BrokerAuthErrorCode.Unauthenticated]: HttpStatus.UNAUTHORIZED,
  [BrokerAuthErrorCode.InvalidInput]: HttpStatus.BAD_REQUEST,
};

export class BrokerAuthException extends DomainException<BrokerAuthErrorCode> {
  constructor(code: BrokerAuthErrorCode, message: string) {
    super(code, message, status[code]);
  }
}
