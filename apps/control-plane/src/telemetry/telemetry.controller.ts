import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DEVICE_ID_PATTERN, MODEL_NAME_PATTERN } from '@fleetline/protocol';
import { DeviceTelemetryQueryDto, TelemetryWindowQueryDto, VersionTelemetryQueryDto } from './dto/telemetry-query.dto.js';
import { TelemetryException, TelemetryErrorCode } from './telemetry.exception.js';
import { resolveWindow, TelemetryQueryService } from './telemetry-query.service.js';
import { RequireRole } from '../access/access.decorators.js';

const DEFAULT_BUCKET_SECONDS = 60;

function checkPath(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new TelemetryException(TelemetryErrorCode.InvalidWindow, `${what} is not valid`);
  return value;
}

/** Model telemetry for viewers: per version, side by side per model, per rollout cohort, per device. */
@ApiTags('telemetry')
@ApiBearerAuth()
@Controller('api/v1/telemetry')
export class TelemetryController {
  constructor(private readonly telemetry: TelemetryQueryService) {}

  @Get('models/:model/versions/:version')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Totals (inferences, error rate, latency percentiles, predictions, vitals, PSI) and a time series of one model version' })
  version(@Param('model') model: string, @Param('version') version: string, @Query() query: VersionTelemetryQueryDto) {
    const bucket = query.bucket ?? DEFAULT_BUCKET_SECONDS;
    const window = resolveWindow(query.from, query.to, bucket);
    return this.telemetry.version(
      checkPath(model, MODEL_NAME_PATTERN, 'model'),
      checkPath(version, /^[0-9A-Za-z.+-]{1,128}$/, 'version'),
      window,
      bucket,
      query.cohort,
      query.variant,
    );
  }

  @Get('models/:model')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Per-version totals of a model (canary next to baseline)' })
  model(@Param('model') model: string, @Query() query: TelemetryWindowQueryDto) {
    return this.telemetry.model(checkPath(model, MODEL_NAME_PATTERN, 'model'), resolveWindow(query.from, query.to));
  }

  @Get('rollouts/:rolloutId')
  @RequireRole('viewer')
  @ApiOperation({ summary: "Per-cohort totals of a rollout's model (candidate waves vs baseline) with PSI" })
  rollout(@Param('rolloutId') rolloutId: string, @Query() query: TelemetryWindowQueryDto) {
    return this.telemetry.rollout(rolloutId, resolveWindow(query.from, query.to));
  }

  @Get('devices/:deviceId')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Per-model totals and time series of one device, from raw samples' })
  device(@Param('deviceId') deviceId: string, @Query() query: DeviceTelemetryQueryDto) {
    const bucket = query.bucket ?? DEFAULT_BUCKET_SECONDS;
    return this.telemetry.device(checkPath(deviceId, DEVICE_ID_PATTERN, 'device id'), resolveWindow(query.from, query.to, bucket), bucket, query.model);
  }
}
