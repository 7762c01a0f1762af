import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString } from 'class-validator';

/**
 * Raw query of `GET /api/v1/devices`; parseDeviceListQuery (device-filter.ts) validates the
 * values so the rules live in one unit-tested place.
 */
export class ListDevicesQuery {
  @ApiPropertyOptional({ description: 'key:value, repeatable (all must match)', type: [String] })
  @IsOptional()
  tag?: string | string[];

  @ApiPropertyOptional({ description: 'devices that have this model (assigned or reported)' })
  @IsOptional()
  @IsString()
  model?: string;

  @ApiPropertyOptional({ description: 'with model: devices whose active version of it is this one' })
  @IsOptional()
  @IsString()
  version?: string;

  @ApiPropertyOptional({ enum: ['true', 'false'] })
  @IsOptional()
  @IsString()
  online?: string;

  @ApiPropertyOptional({ description: 'device id prefix' })
  @IsOptional()
  @IsString()
  q?: string;

  @ApiPropertyOptional({ description: '1..1000, default 100' })
  @IsOptional()
  @IsString()
  limit?: string;

  @ApiPropertyOptional({ description: 'cursor from the previous page (`next`)' })
  @IsOptional()
  @IsString()
  after?: string;

  @ApiPropertyOptional({ enum: ['true', 'false'], description: 'true: decommissioned devices only' })
  @IsOptional()
  @IsString()
  decommissioned?: string;
}
