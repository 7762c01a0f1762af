import { Controller, Get, Headers, Inject, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../access/access.decorators.js';
import { AccessErrorCode, AccessException } from '../access/access.exception.js';
import { AccessService } from '../access/access.service.js';
import { METRICS_CONFIG, type MetricsConfig } from './metrics.config.js';
import { MetricsService } from './metrics.service.js';

/**
 * Prometheus scrape endpoint. Public by default, like most exporters (it carries counts, no
 * device ids or secrets); with METRICS_REQUIRE_KEY=true it needs an API key of any role,
 * sent as `Authorization: Bearer <key>` (Prometheus: `authorization: { credentials_file: ... }`).
 */
@ApiExcludeController()
@Controller()
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly access: AccessService,
    @Inject(METRICS_CONFIG) private readonly config: MetricsConfig,
  ) {}

  @Public()
  @Get('metrics')
  async scrape(@Headers('authorization') authorization: string | undefined, @Res() res: Response): Promise<void> {
    if (this.config.requireKey) {
      const key = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
      if (!key) throw new AccessException(AccessErrorCode.Unauthenticated, 'missing API key (Authorization: Bearer <key>); METRICS_REQUIRE_KEY is set');
      // Any valid key will do: viewer is the lowest role.
      await this.access.authenticate(key);
    }
    const body = await this.metrics.render();
    res.status(200).setHeader('content-type', this.metrics.contentType).setHeader('cache-control', 'no-store').send(body);
  }
}
