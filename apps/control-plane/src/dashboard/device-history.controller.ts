import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { isValidDeviceId } from '@fleetline/protocol';
import { DeviceHistoryRepository, type DeviceRolloutEntry } from './device-history.repository.js';
import { DashboardErrorCode, DashboardException } from './dashboard.exception.js';
import { DeviceHistoryQueryDto } from './dto/device-history.query.js';
import { RequireRole } from '../access/access.decorators.js';

@ApiTags('devices')
@ApiBearerAuth()
@Controller('api/v1/devices')
export class DeviceHistoryController {
  constructor(private readonly history: DeviceHistoryRepository) {}

  /** The rollouts a device took part in (newest first), with its state and failure in each. */
  @Get(':id/rollouts')
  @RequireRole('viewer')
  @ApiOperation({ summary: "A device's update history across rollouts (newest first; skipped memberships are not listed)" })
  async rollouts(@Param('id') id: string, @Query() query: DeviceHistoryQueryDto): Promise<{ items: DeviceRolloutEntry[] }> {
    if (!isValidDeviceId(id)) throw new DashboardException(DashboardErrorCode.InvalidDeviceId, `"${id}" is not a device id`);
    return { items: await this.history.rolloutsOf(id, query.limit ?? 50) };
  }
}
