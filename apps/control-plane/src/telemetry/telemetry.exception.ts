import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum TelemetryErrorCode {
  InvalidWindow = 'telemetry-invalid-window',
  TooManyPoints = 'telemetry-too-many-points',
  RolloutNotFound = 'telemetry-rollout-not-found',
  RolloutsUnavailable = 'telemetry-rollouts-unavailable',
}

const status: Record<TelemetryErrorCode, HttpStatus> = {
  [TelemetryErrorCode.InvalidWindow]: HttpStatus.BAD_REQUEST,
  [TelemetryErrorCode.TooManyPoints]: HttpStatus.BAD_REQUEST,
  [TelemetryErrorCode.RolloutNotFound]: HttpStatus.NOT_FOUND,
  [TelemetryErrorCode.RolloutsUnavailable]: HttpStatus.NOT_FOUND,
};

export class TelemetryException extends DomainException<TelemetryErrorCode> {
  constructor(code: TelemetryErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
