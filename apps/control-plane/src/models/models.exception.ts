import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum ModelErrorCode {
  ModelNotFound = 'model-not-found',
  DuplicateModel = 'duplicate-model',
  VersionNotFound = 'version-not-found',
  DuplicateVersion = 'duplicate-version',
  InvalidVersion = 'invalid-version',
  InvalidUpload = 'invalid-upload',
  InvalidMetadata = 'invalid-metadata',
  ArtifactTooLarge = 'artifact-too-large',
  InvalidCursor = 'invalid-cursor',
  PublishFailed = 'publish-failed',
  /** TUF_KEYS=offline: no signed targets metadata lists the version yet. */
  VersionAwaitingSignature = 'version-awaiting-signature',
}

const status: Record<ModelErrorCode, HttpStatus> = {
  [ModelErrorCode.ModelNotFound]: HttpStatus.NOT_FOUND,
  [ModelErrorCode.DuplicateModel]: HttpStatus.CONFLICT,
  [ModelErrorCode.VersionNotFound]: HttpStatus.NOT_FOUND,
  [ModelErrorCode.DuplicateVersion]: HttpStatus.CONFLICT,
  [ModelErrorCode.InvalidVersion]: HttpStatus.BAD_REQUEST,
  [ModelErrorCode.InvalidUpload]: HttpStatus.BAD_REQUEST,
  [ModelErrorCode.InvalidMetadata]: HttpStatus.BAD_REQUEST,
  [ModelErrorCode.ArtifactTooLarge]: HttpStatus.PAYLOAD_TOO_LARGE,
  [ModelErrorCode.InvalidCursor]: HttpStatus.BAD_REQUEST,
  [ModelErrorCode.PublishFailed]: HttpStatus.INTERNAL_SERVER_ERROR,
  [ModelErrorCode.VersionAwaitingSignature]: HttpStatus.CONFLICT,
};

export class ModelException extends DomainException<ModelErrorCode> {
  constructor(code: ModelErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
