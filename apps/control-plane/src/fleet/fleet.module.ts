import { Module } from '@nestjs/common';
import { FleetController } from './fleet.controller.js';
import { FleetRepository } from './fleet.repository.js';
import { FleetService } from './fleet.service.js';

/** Fleet-wide read models (counts for dashboards and the CLI). */
@Module({
  controllers: [FleetController],
  providers: [FleetRepository, FleetService],
  exports: [FleetService],
})
export class FleetModule {}
