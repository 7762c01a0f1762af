import { Module } from '@nestjs/common';
import { FleetModule } from '../fleet/fleet.module.js';
import { DashboardController } from './dashboard.controller.js';
import { DeviceHistoryController } from './device-history.controller.js';
import { DeviceHistoryRepository } from './device-history.repository.js';
import { FleetStreamController } from './fleet-stream.controller.js';
import { FleetStreamService } from './fleet-stream.service.js';

/**
 * The web dashboard (static single-page UI at / and /ui/*) and the read models only it needs:
 * the live fleet stream and a device's rollout history.
 */
@Module({
  imports: [FleetModule],
  controllers: [DashboardController, FleetStreamController, DeviceHistoryController],
  providers: [FleetStreamService, DeviceHistoryRepository],
})
export class DashboardModule {}
