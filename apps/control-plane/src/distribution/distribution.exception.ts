import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum DistributionErrorCode {
  MetadataNotFound = 'metadata-not-found',
  TargetNotFound = 'target-not-found',
  RangeNotSatisfiable = 'range-not-satisfiable',
  SigningKeyOffline = 'signing-key-offline',
  InvalidMetadata = 'invalid-metadata',
  StaleMetadata = 'stale-metadata',
  ArtifactMissing = 'artifact-missing',
  /** ARTIFACT_ACCESS=assigned and the device has no assignment of that version. */
  TargetNotAssigned = 'target-not-assigned',
  /** ARTIFACT_MAX_STREAMS downloads are streaming on this replica: retry after Retry-After. */
  DownloadBusy = 'download-busy',
}

const status: Record<DistributionErrorCode, HttpStatus> = {
  [DistributionErrorCode.MetadataNotFound]: HttpStatus.NOT_FOUND,
  [DistributionErrorCode.TargetNotFound]: HttpStatus.NOT_FOUND,
  [DistributionErrorCode.RangeNotSatisfiable]: HttpStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
  [DistributionErrorCode.SigningKeyOffline]: HttpStatus.SERVICE_UNAVAILABLE,
  [DistributionErrorCode.InvalidMetadata]: HttpStatus.BAD_REQUEST,
  [DistributionErrorCode.StaleMetadata]: HttpStatus.CONFLICT,
  [DistributionErrorCode.ArtifactMissing]: HttpStatus.INTERNAL_SERVER_ERROR,
  [DistributionErrorCode.TargetNotAssigned]: HttpStatus.FORBIDDEN,
  [DistributionErrorCode.DownloadBusy]: HttpStatus.SERVICE_UNAVAILABLE,
};

export class DistributionException extends DomainException<DistributionErrorCode> {
  constructor(code: DistributionErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, status[code], details);
  }
}
