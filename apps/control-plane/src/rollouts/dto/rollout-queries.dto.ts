import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { MODEL_NAME_PATTERN } from '@fleetline/protocol';
import { ROLLOUT_DEVICE_STATES, ROLLOUT_STATES, type RolloutDeviceState, type RolloutState } from '../rollout.types.js';

export class PageQueryDto {
  @ApiPropertyOptional({ default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;

  @ApiPropertyOptional({ description: 'Cursor from the previous page (`next`)' })
  @IsOptional()
  @IsString()
  @MaxLength(512)
  after?: string;

  /** EventSource streams pass the API key here; the guard reads it (GET only). */
  @IsOptional()
  @IsString()
  key?: string;
}

export class ListRolloutsQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: ROLLOUT_STATES })
  @IsOptional()
  @IsIn(ROLLOUT_STATES as unknown as string[])
  state?: RolloutState;

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(MODEL_NAME_PATTERN)
  model?: string;
}

export class ListRolloutDevicesQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: ROLLOUT_DEVICE_STATES })
  @IsOptional()
  @IsIn(ROLLOUT_DEVICE_STATES as unknown as string[])
  state?: RolloutDeviceState;

  @ApiPropertyOptional()
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  wave?: number;
}
