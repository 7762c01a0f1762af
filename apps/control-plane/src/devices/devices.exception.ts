import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum DeviceErrorCode {
  DeviceNotFound = 'device-not-found',
  DuplicateDevice = 'duplicate-device',
  InvalidDeviceId = 'invalid-device-id',
  /** The id belongs to the control plane's own broker clients (fleetline-cp...). */
  ReservedDeviceId = 'reserved-device-id',
  InvalidFilter = 'invalid-filter',
  InvalidCursor = 'invalid-cursor',
  EnrollmentTokenInvalid = 'enrollment-token-invalid',
  EnrollmentTokenExpired = 'enrollment-token-expired',
  EnrollmentTokenRevoked = 'enrollment-token-revoked',
  EnrollmentTokenUsedUp = 'enrollment-token-used-up',
  EnrollmentTokenNotFound = 'enrollment-token-not-found',
  InvalidEnrollmentToken = 'invalid-enrollment-token',
  /** The device asked for a tag whose key the token does not let devices set. */
  EnrollmentTagNotAllowed = 'enrollment-tag-not-allowed',
  /** Too many enrollments or failed authentications from the source address: retry after Retry-After. */
  RateLimited = 'rate-limited',
  DeviceUnauthenticated = 'device-unauthenticated',
  ModelNotAssigned = 'model-not-assigned',
  /** A client certificate that does not parse, is not valid now, does not chain to the client CA or does not name the device. */
  InvalidClientCertificate = 'invalid-client-certificate',
  /** Client certificates are off (MQTT_TLS_CLIENT_CA_FILE unset). */
  ClientCertificatesOff = 'client-certificates-off',
}

const status: Record<DeviceErrorCode, HttpStatus> = {
  [DeviceErrorCode.DeviceNotFound]: HttpStatus.NOT_FOUND,
  [DeviceErrorCode.DuplicateDevice]: HttpStatus.CONFLICT,
  [DeviceErrorCode.InvalidDeviceId]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.ReservedDeviceId]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.InvalidFilter]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.InvalidCursor]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.EnrollmentTokenInvalid]: HttpStatus.UNAUTHORIZED,
  [DeviceErrorCode.EnrollmentTokenExpired]: HttpStatus.FORBIDDEN,
  [DeviceErrorCode.EnrollmentTokenRevoked]: HttpStatus.FORBIDDEN,
  [DeviceErrorCode.EnrollmentTokenUsedUp]: HttpStatus.FORBIDDEN,
  [DeviceErrorCode.EnrollmentTokenNotFound]: HttpStatus.NOT_FOUND,
  [DeviceErrorCode.InvalidEnrollmentToken]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.EnrollmentTagNotAllowed]: HttpStatus.FORBIDDEN,
  [DeviceErrorCode.RateLimited]: HttpStatus.TOO_MANY_REQUESTS,
  [DeviceErrorCode.DeviceUnauthenticated]: HttpStatus.UNAUTHORIZED,
  [DeviceErrorCode.ModelNotAssigned]: HttpStatus.NOT_FOUND,
  [DeviceErrorCode.InvalidClientCertificate]: HttpStatus.BAD_REQUEST,
  [DeviceErrorCode.ClientCertificatesOff]: HttpStatus.CONFLICT,
};

export class DeviceException extends DomainException<DeviceErrorCode> {
  constructor(code: DeviceErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
