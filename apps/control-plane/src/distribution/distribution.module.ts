import { type MiddlewareConsumer, Module, type NestModule } from '@nestjs/common';
import { DeviceAuthModule } from '../devices/auth/device-auth.module.js';
import { ModelsModule } from '../models/models.module.js';
import { ArtifactAccessPolicy } from './artifact-access.js';
import { DistributionController } from './distribution.controller.js';
import { DownloadAdmissionMiddleware, DownloadAdmissionModule } from './download-admission.js';
import { HotArtifacts } from './hot-artifacts.js';
import { TufAdminController } from './tuf-admin.controller.js';
import { TufModule } from './tuf.module.js';

/**
 * Device-facing distribution: TUF metadata and target downloads under /api/v1/tuf, plus the
 * admin endpoints for offline keys. The TUF repository itself is TufModule (shared with
 * ModelsModule, which publishes into it).
 */
@Module({
  imports: [DeviceAuthModule, ModelsModule, TufModule, DownloadAdmissionModule],
  controllers: [DistributionController, TufAdminController],
  providers: [ArtifactAccessPolicy, DownloadAdmissionMiddleware, HotArtifacts],
})
export class DistributionModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // Target bytes only: metadata is small and a device that cannot read it cannot even ask.
    consumer.apply(DownloadAdmissionMiddleware).forRoutes('api/v1/tuf/targets/{*path}');
  }
}
