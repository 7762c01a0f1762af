import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { type DeviceCredentials, isValidModelName } from '@fleetline/protocol';
import type { Page } from '../infra/http/keyset-page.js';
import { DesiredStateService } from './desired-state.service.js';
import { parseDeviceListQuery } from './device-filter.js';
import type { DeviceDetail } from './devices.repository.js';
import { DeviceErrorCode, DeviceException } from './devices.exception.js';
import { type DeviceListItem, DevicesService } from './devices.service.js';
import { AssignModelDto } from './dto/assign-model.dto.js';
import { CreateDeviceDto } from './dto/create-device.dto.js';
import { ListDevicesQuery } from './dto/list-devices.query.js';
import { UpdateDeviceDto } from './dto/update-device.dto.js';
import { RequireRole } from '../access/access.decorators.js';

export function requestOrigin(request: Request): string {
  return `${request.protocol}://${request.get('host') ?? 'localhost'}`;
}

@ApiTags('devices')
@ApiBearerAuth()
@Controller('api/v1/devices')
export class DevicesController {
  constructor(
    private readonly devices: DevicesService,
    private readonly desired: DesiredStateService,
  ) {}

  /** Pre-registers a device; the answer holds its secret, which is never shown again. */
  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Pre-register a device (its credentials are shown once)' })
  create(@Body() dto: CreateDeviceDto, @Req() request: Request): Promise<DeviceCredentials> {
    return this.devices.provision(dto, requestOrigin(request));
  }

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Search devices' })
  list(@Query() query: ListDevicesQuery): Promise<Page<DeviceListItem>> {
    return this.devices.list(parseDeviceListQuery(query));
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'A device: inventory, tags, models and presence' })
  get(@Param('id') id: string): Promise<DeviceDetail> {
    return this.devices.get(id);
  }

  @Patch(':id')
  @RequireRole('operator')
  @ApiOperation({ summary: "Change a device's tags or name" })
  update(@Param('id') id: string, @Body() dto: UpdateDeviceDto): Promise<DeviceDetail> {
    return this.devices.update(id, dto);
  }

  /** Decommission (see DevicesService.decommission). */
  @Delete(':id')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: 'Decommission a device (its credentials stop working)' })
  decommission(@Param('id') id: string): Promise<void> {
    return this.devices.decommission(id);
  }

  /** Assigns a model version to one device directly (outside any rollout). */
  @Put(':id/models/:model')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Assign a model version to a device' })
  async assign(
    @Param('id') id: string,
    @Param('model') model: string,
    @Body() dto: AssignModelDto,
  ): Promise<{ deviceId: string; model: string; version: string; revision: number }> {
    assertModelName(model);
    await this.devices.assertLive(id);
    const [result] = await this.desired.assign([{ deviceId: id, model, version: dto.version, action: dto.action, timeoutSeconds: dto.timeoutSeconds }]);
    if (!result) throw new DeviceException(DeviceErrorCode.DeviceNotFound, `no device ${id}`);
    return { deviceId: id, model, version: dto.version, revision: result.revision };
  }

  @Delete(':id/models/:model')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a model from a device' })
  async unassign(@Param('id') id: string, @Param('model') model: string): Promise<void> {
    assertModelName(model);
    await this.devices.assertLive(id);
    const [result] = await this.desired.unassign([{ deviceId: id, model }]);
    if (!result) throw new DeviceException(DeviceErrorCode.ModelNotAssigned, `model ${model} is not assigned to device ${id}`);
  }
}

function assertModelName(model: string): void {
  if (!isValidModelName(model)) throw new DeviceException(DeviceErrorCode.InvalidFilter, `"${model}" is not a model name`);
}
