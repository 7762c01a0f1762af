import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum RolloutErrorCode {
  NotFound = 'rollout-not-found',
  InvalidDefinition = 'invalid-rollout',
  ModelVersionNotFound = 'model-version-not-found',
  Conflict = 'rollout-conflict',
  InvalidTransition = 'invalid-rollout-transition',
  InvalidCursor = 'invalid-cursor',
}

const status: Record<RolloutErrorCode, HttpStatus> = {
  [RolloutErrorCode.NotFound]: HttpStatus.NOT_FOUND,
  [RolloutErrorCode.InvalidDefinition]: HttpStatus.BAD_REQUEST,
  [RolloutErrorCode.ModelVersionNotFound]: HttpStatus.NOT_FOUND,
  [RolloutErrorCode.Conflict]: HttpStatus.CONFLICT,
  [RolloutErrorCode.InvalidTransition]: HttpStatus.CONFLICT,
  [RolloutErrorCode.InvalidCursor]: HttpStatus.BAD_REQUEST,
};

export class RolloutException extends DomainException<RolloutErrorCode> {
  constructor(code: RolloutErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
