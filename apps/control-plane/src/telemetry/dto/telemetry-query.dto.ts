import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsISO8601, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { MODEL_NAME_PATTERN } from '@fleetline/protocol';

export class TelemetryWindowQueryDto {
  @ApiPropertyOptional({ description: 'Window start (ISO 8601); defaults to one hour before `to`.', example: '2026-01-01T00:00:00Z' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 timestamp' })
  from?: string;

  @ApiPropertyOptional({ description: 'Window end, exclusive (ISO 8601); defaults to now.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 timestamp' })
  to?: string;
}

export class TelemetrySeriesQueryDto extends TelemetryWindowQueryDto {
  @ApiPropertyOptional({ description: 'Bucket width of the time series in seconds (multiple of 60).', default: 60 })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'bucket must be an integer number of seconds' })
  @Min(60, { message: 'bucket must be at least 60 seconds' })
  @Max(86_400, { message: 'bucket must be at most 86400 seconds' })
  bucket?: number;
}

export class VersionTelemetryQueryDto extends TelemetrySeriesQueryDto {
  @ApiPropertyOptional({ description: 'Only this cohort: `fleet` or `rollout:<rolloutId>:w<wave>`.' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  cohort?: string;

  @ApiPropertyOptional({ description: 'Only this build (variant) of the version, e.g. `npu-int8`.' })
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,63}$/, { message: 'variant must be a build name: 1-64 chars of [a-z0-9._-], starting alphanumeric' })
  variant?: string;
}

export class DeviceTelemetryQueryDto extends TelemetrySeriesQueryDto {
  @ApiPropertyOptional({ description: 'Only this model.' })
  @IsOptional()
  @Matches(MODEL_NAME_PATTERN, { message: 'model must be a model name' })
  model?: string;
}
