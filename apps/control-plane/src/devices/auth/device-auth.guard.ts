import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { SourceLimits, sourceAddress } from '../../infra/rate-limit/source-limits.js';
import { DeviceCredentialVerifier } from './device-credential-verifier.service.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';

export interface AuthenticatedDevice {
  id: string;
}

export interface RequestWithDevice {
  device?: AuthenticatedDevice;
}

/**
 * HTTP Basic `deviceId:secret` (RFC 7617) for device-facing routes (TUF metadata, artifact
 * downloads). Use together with `@Public()` so the API key guard lets the request through:
 *
 *   @Public() @UseGuards(DeviceAuthGuard) @Get(...)
 *
 * Attaches `request.device = { id }`. A decommissioned device is refused at once.
 */
@Injectable()
export class DeviceAuthGuard implements CanActivate {
  constructor(
    private readonly verifier: DeviceCredentialVerifier,
    private readonly limits: SourceLimits,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<Request & RequestWithDevice>();
    const source = sourceAddress(request);
    // A source that used up its failed attempts (DEVICE_AUTH_FAILURES_*) is refused before its
    // credentials are looked at, good or bad, until its bucket refills.
    const waitMs = await this.limits.checkDeviceAuth(source, 'device_auth_http');
    if (waitMs > 0) {
      http.getResponse<Response>().setHeader('Retry-After', String(Math.ceil(waitMs / 1000)));
      throw new DeviceException(
        DeviceErrorCode.RateLimited,
        `too many failed device authentications from this address; retry in ${Math.ceil(waitMs / 1000)} s`,
      );
    }
    const credentials = parseBasic(request.headers.authorization);
    if (credentials && (await this.verifier.verify(credentials.id, credentials.secret))) {
      request.device = { id: credentials.id };
      return true;
    }
    // Only a presented credential is a guess worth counting.
    if (credentials) await this.limits.deviceAuthFailed(source);
    http.getResponse<Response>().setHeader('WWW-Authenticate', 'Basic realm="fleetline-device", charset="UTF-8"');
    throw new DeviceException(DeviceErrorCode.DeviceUnauthenticated, 'device credentials missing or invalid (HTTP Basic deviceId:secret)');
  }
}

export function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim()) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}
