import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import type { Tags } from '@fleetline/protocol';
import { IsTags } from '../../dto/tags.validator.js';

export class CreateEnrollmentTokenDto {
  @ApiProperty({ example: 'hamburg-batch-7' })
  @IsString()
  @Length(1, 128)
  name: string;

  @ApiPropertyOptional({ description: 'Tags applied to every device enrolled with the token', type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsTags()
  tags?: Tags;

  @ApiPropertyOptional({ description: 'Lifetime in seconds; without it the token does not expire' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10 * 365 * 24 * 3600)
  expiresInSeconds?: number;

  @ApiPropertyOptional({ description: 'Number of enrollments allowed; without it, unlimited' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  maxUses?: number;
}
