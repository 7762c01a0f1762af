import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsInt, IsOptional, IsString, Length, Matches, Max, Min } from 'class-validator';
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

  @ApiPropertyOptional({
    description:
      'Tag keys a device enrolling with the token may set itself (its other tags come from `tags`). Default none: a device asking for any tag is refused',
    type: [String],
    example: ['camera-serial'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @Matches(/^[A-Za-z0-9._-]{1,64}$/, { each: true, message: 'deviceTagKeys: tag keys, 1-64 chars of [A-Za-z0-9._-]' })
  deviceTagKeys?: string[];

  @ApiPropertyOptional({ description: 'Lifetime in seconds; default ENROLLMENT_TOKEN_TTL_SECONDS (7 days)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10 * 365 * 24 * 3600)
  expiresInSeconds?: number;

  @ApiPropertyOptional({ description: 'Number of enrollments allowed; default 1 unless `unlimited` is true' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  maxUses?: number;

  @ApiPropertyOptional({ description: 'true: any number of enrollments (explicit opt-in; not together with maxUses)' })
  @IsOptional()
  @IsBoolean()
  unlimited?: boolean;
}
