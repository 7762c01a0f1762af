import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
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
  @ApiOperation({ summary: 'Fleet summary: devices online, versions per model, active rollouts' })
  summary(): Promise<FleetSummary> {
    return this.fleet.summary();
  }
}
