import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length } from 'class-validator';
import type { Tags } from '@fleetline/protocol';
import { IsTags } from './tags.validator.js';

export class UpdateDeviceDto {
  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @Length(1, 256)
  name?: string;

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsTags()
  tags?: Tags;

  /** `replace` (default): `tags` becomes the device's whole tag set. `merge`: keys in `tags` are added or overwritten, others kept. */
  @ApiPropertyOptional({ enum: ['replace', 'merge'], default: 'replace' })
  @IsOptional()
  @IsIn(['replace', 'merge'])
  tagsMode?: 'replace' | 'merge';
}
