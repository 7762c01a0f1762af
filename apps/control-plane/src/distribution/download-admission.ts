import { Inject, Injectable, Module, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { AdmissionBound } from '../infra/admission/admission-bound.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { DistributionErrorCode } from './distribution.exception.js';

/** ARTIFACT_MAX_STREAMS / ARTIFACT_BUSY_RETRY_SECONDS when a hand-built config leaves them out. */
const DEFAULTS = { maxStreams: 256, busyRetrySeconds: 2 };

/**
 * The bound on artifact streams of this replica (ARTIFACT_MAX_STREAMS), shared by the middleware
 * that enforces it and the metrics that show it.
 */
@Injectable()
export class DownloadAdmission extends AdmissionBound {
  readonly busyRetrySeconds: number;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    const settings = config.downloadAdmission ?? DEFAULTS;
    super(settings.maxStreams);
    this.busyRetrySeconds = settings.busyRetrySeconds;
  }
}

/**
 * Takes a stream slot for each target download before anything else is done for it (credentials,
 * lookups, file I/O), and gives it back when the response is finished or the device went away.
 * Without a slot the answer is 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3): devices treat it as
 * "busy", not as a failed attempt, and resume the download no sooner than told (device-agent
 * download-retry.logic.ts). The refusal runs before authentication on purpose: checking a credential
 * is the expensive part of a request a busy replica is trying not to do.
 */
@Injectable()
export class DownloadAdmissionMiddleware implements NestMiddleware {
  constructor(private readonly admission: DownloadAdmission) {}

  use(_req: Request, res: Response, next: NextFunction): void {
    const release = this.admission.tryEnter();
    if (!release) {
      res.setHeader('Retry-After', String(this.admission.busyRetrySeconds));
      res.status(503).json({
        statusCode: 503,
        code: DistributionErrorCode.DownloadBusy,
        message: `this replica is streaming its most artifacts at once (ARTIFACT_MAX_STREAMS=${this.admission.maxPending}); retry in ${this.admission.busyRetrySeconds} s`,
      });
      return;
    }
    // 'close' fires once per response, after the last byte or when the socket went away first.
    // A streamed response already carries about ten 'close' listeners (logging, metrics, timeout,
    // pipeline); this one is expected, not a leak.
    res.setMaxListeners(res.getMaxListeners() + 1);
    res.once('close', release);
    next();
  }
}

/** Its own module so the metrics can read the bound without importing the distribution routes. */
@Module({ providers: [DownloadAdmission], exports: [DownloadAdmission] })
export class DownloadAdmissionModule {}
