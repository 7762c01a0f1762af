import { existsSync } from 'node:fs';
import { Controller, Get, Logger, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Public } from '../access/access.decorators.js';
import { DashboardErrorCode, DashboardException } from './dashboard.exception.js';
import { CHART_JS_ASSET, DASHBOARD_CSP, type DashboardPaths, dashboardPaths, resolveAssetPath } from './dashboard-assets.js';

/**
 * Serves the web dashboard: the page at `/` and its files under `/ui/`. These routes are public
 * because they are static files only; every call the page makes to /api/v1 carries the API key
 * the user signs in with.
 */
@ApiExcludeController()
@Controller()
export class DashboardController {
  private readonly paths: DashboardPaths = dashboardPaths();

  constructor() {
    // The files ship in the package's src/dashboard/public (no build step); say so if an install lost them.
    if (!existsSync(this.paths.publicDir)) new Logger('Dashboard').warn(`dashboard files not found in ${this.paths.publicDir}; / will answer 404`);
  }

  @Public()
  @Get()
  index(@Res() res: Response): void {
    this.send(res, resolveAssetPath(this.paths.publicDir, 'index.html'));
  }

  @Public()
  @Get('ui/*path')
  asset(@Req() req: Request, @Res() res: Response): void {
    this.send(res, this.locate(req.path));
  }

  private locate(requestPath: string): string | undefined {
    const relative = requestPath.replace(/^\/ui\//, '');
    if (relative === CHART_JS_ASSET) return this.paths.chartJs;
    return resolveAssetPath(this.paths.publicDir, relative);
  }

  private send(res: Response, file: string | undefined): void {
    if (!file) throw new DashboardException(DashboardErrorCode.AssetNotFound, 'no such dashboard file');
    res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    // Stream URLs carry the key as ?key=; never leak page URLs to other origins.
    res.setHeader('Referrer-Policy', 'no-referrer');
    // Revalidate every load (ETag makes that a 304) so an upgraded control plane serves its own UI.
    res.sendFile(file, { headers: { 'Cache-Control': 'no-cache' }, dotfiles: 'deny' }, (err?: Error) => {
      if (!err || res.headersSent) return;
      res.status(404).json({ statusCode: 404, code: DashboardErrorCode.AssetNotFound, message: 'no such dashboard file' });
    });
  }
}
