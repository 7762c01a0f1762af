import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module.js';
import { ModelsModule } from '../models/models.module.js';
import { TelemetryModule } from '../telemetry/telemetry.module.js';
import { DriverLease } from './driver-lease.js';
import { RolloutPreparer } from './preparation/rollout-preparer.js';
import { RolloutEngine } from './rollout-engine.js';
import { RolloutReportFollower } from './rollout-report-follower.js';
import { RolloutRepository } from './rollout.repository.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsService } from './rollouts.service.js';

/**
 * Staged rollouts: definitions and operator actions (RolloutsService, RolloutsController) and
 * the engine that drives them (RolloutEngine, one driving replica at a time via DriverLease).
 * Health gates come from TelemetryModule's HealthGateService when it provides one.
 */
@Module({
  imports: [DevicesModule, ModelsModule, TelemetryModule],
  controllers: [RolloutsController],
  providers: [RolloutRepository, DriverLease, RolloutReportFollower, RolloutPreparer, RolloutEngine, RolloutsService],
  exports: [RolloutsService, RolloutEngine],
})
export class RolloutsModule {}
