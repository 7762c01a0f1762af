import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Length, Matches } from 'class-validator';
import { DEVICE_ID_PATTERN, type Tags } from '@fleetline/protocol';
import { IsTags } from './tags.validator.js';

export class CreateDeviceDto {
  @ApiProperty({ example: 'cam-0042', pattern: DEVICE_ID_PATTERN.source })
  @IsString()
  @Matches(DEVICE_ID_PATTERN, { message: 'id: 1-128 chars of [A-Za-z0-9._:-], starting alphanumeric' })
  id: string;

  @ApiPropertyOptional({ example: 'Loading dock camera' })
  @IsOptional()
  @IsString()
  @Length(1, 256)
  name?: string;

  @ApiPropertyOptional({ example: { region: 'eu', site: 'hamburg' }, type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsTags()
  tags?: Tags;
}
