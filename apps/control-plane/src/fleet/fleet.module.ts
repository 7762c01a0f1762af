import { Module } from '@nestjs/common';
import { FleetController } from './fleet.controller.js';
import { FleetCountsCompactor } from './fleet-counts.compactor.js';
import { FleetCountsRepository } from './fleet-counts.repository.js';
import { FleetService } from './fleet.service.js';

/** Fleet-wide read models (running counts for dashboards, the CLI and /metrics). */
@Module({
  controllers: [FleetController],
  providers: [FleetCountsRepository, FleetCountsCompactor, FleetService],
  exports: [FleetService, FleetCountsRepository],
})
export class FleetModule {}
