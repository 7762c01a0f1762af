import { HttpStatus } from '@nestjs/common';
import { DomainException } from '../infra/http/domain.exception.js';

export enum DashboardErrorCode {
  AssetNotFound = 'dashboard-asset-not-found',
  InvalidDeviceId = 'invalid-device-id',
}

const status: Record<DashboardErrorCode, HttpStatus> = {
  [DashboardErrorCode.AssetNotFound]: HttpStatus.NOT_FOUND,
  [DashboardErrorCode.InvalidDeviceId]: HttpStatus.BAD_REQUEST,
};

export class DashboardException extends DomainException<DashboardErrorCode> {
  constructor(code: DashboardErrorCode, message: string) {
    super(code, message, status[code]);
  }
}
