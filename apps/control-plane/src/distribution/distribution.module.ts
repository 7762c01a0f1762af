import { Module } from '@nestjs/common';
import { DeviceAuthModule } from '../devices/device-auth.module.js';
import { ModelsModule } from '../models/models.module.js';
import { ArtifactAccessPolicy } from './artifact-access.js';
import { DistributionController } from './distribution.controller.js';
import { TufAdminController } from './tuf-admin.controller.js';
import { TufModule } from './tuf.module.js';

/**
 * Device-facing distribution: TUF metadata and target downloads under /api/v1/tuf, plus the
 * admin endpoints for offline keys. The TUF repository itself is TufModule (shared with
 * ModelsModule, which publishes into it).
 */
@Module({
  imports: [DeviceAuthModule, ModelsModule, TufModule],
  controllers: [DistributionController, TufAdminController],
  providers: [ArtifactAccessPolicy],
})
export class DistributionModule {}
