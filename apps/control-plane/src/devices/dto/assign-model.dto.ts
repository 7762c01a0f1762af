import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';

export class AssignModelDto {
  @ApiProperty({ example: '1.4.0' })
  @IsString()
  @Matches(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/, { message: 'version must be a semver version' })
  version: string;

  @ApiPropertyOptional({ enum: ['install', 'download-only'], default: 'install' })
  @IsOptional()
  @IsIn(['install', 'download-only'])
  action?: 'install' | 'download-only';

  @ApiPropertyOptional({ description: 'Seconds the device may spend on the update' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(7 * 24 * 3600)
  timeoutSeconds?: number;
}
