import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { type FleetSummary, FleetService } from './fleet.service.js';
import { RequireRole } from '../access/access.decorators.js';

@ApiTags('fleet')
@ApiBearerAuth()
@Controller('api/v1/fleet')
export class FleetController {
  constructor(private readonly fleet: FleetService) {}

  /** Device counts (online/offline) and, per model, how many devices run each version. */
  @Get('summary')
  @RequireRole('viewer')
  summary(): Promise<FleetSummary> {
    return this.fleet.summary();
  }
}
