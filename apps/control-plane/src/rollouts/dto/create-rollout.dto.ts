import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsISO8601,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { DEVICE_ID_PATTERN, MODEL_NAME_PATTERN } from '@fleetline/protocol';
import { GATE_METRICS, type GateMetric } from '../../telemetry/gates/health-gate.contract.js';

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export class CurrentVersionDto {
  @ApiPropertyOptional({ description: 'Model whose active version is matched; defaults to the rollout model' })
  @IsOptional()
  @Matches(MODEL_NAME_PATTERN)
  model?: string;

  @ApiPropertyOptional({ type: [String], description: 'Active version is one of these' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(100)
  @Matches(SEMVER, { each: true, message: 'current.versions must be semver versions' })
  versions?: string[];

  @ApiPropertyOptional({ description: 'Only devices that do not run the model at all' })
  @IsOptional()
  @IsBoolean()
  notInstalled?: boolean;
}

export class PresenceDto {
  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  online?: boolean;

  @ApiPropertyOptional({ description: 'Seen (any message) within this many seconds' })
  @IsOptional()
  @IsInt()
  @Min(1)
  seenWithinSeconds?: number;
}

export class RuntimeSelectorDto {
  @ApiProperty()
  @IsString()
  @MaxLength(64)
  name: string;

  @ApiPropertyOptional({ description: 'Semver range of the runtime version' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  range?: string;
}

export class InventorySelectorDto {
  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @IsString({ each: true })
  hardwareClasses?: string[];

  @ApiPropertyOptional({ type: RuntimeSelectorDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => RuntimeSelectorDto)
  runtime?: RuntimeSelectorDto;

  @ApiPropertyOptional({ description: 'Semver range of the agent version, e.g. ">=0.2.0"' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  agentVersion?: string;
}

export class TargetDto {
  @ApiPropertyOptional({ description: 'Every tag must match (AND)', example: { region: 'eu' }, type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ type: CurrentVersionDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => CurrentVersionDto)
  current?: CurrentVersionDto;

  @ApiPropertyOptional({ type: PresenceDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => PresenceDto)
  presence?: PresenceDto;

  @ApiPropertyOptional({ type: InventorySelectorDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => InventorySelectorDto)
  inventory?: InventorySelectorDto;

  @ApiPropertyOptional({ type: [String], description: 'Explicit device ids, any number (combined with the other criteria by AND)' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(2_000_000)
  @Matches(DEVICE_ID_PATTERN, { each: true, message: 'target.deviceIds must be device ids' })
  deviceIds?: string[];
}

export class FailureConditionDto {
  @ApiPropertyOptional({ description: 'Failures as a percentage of executed devices' })
  @IsOptional()
  @IsNumber()
  @Min(0.001)
  @Max(100)
  percent?: number;

  @ApiPropertyOptional({ description: 'Absolute number of failures' })
  @IsOptional()
  @IsInt()
  @Min(1)
  count?: number;

  @ApiPropertyOptional({ description: 'Judge only once this many devices finished', default: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  minExecuted?: number;
}

export class GateDto {
  @ApiProperty({ enum: GATE_METRICS })
  @IsIn(GATE_METRICS as unknown as string[])
  metric: GateMetric;

  @ApiPropertyOptional()
  @IsOptional()
  @IsNumber()
  @Min(0)
  maxRatio?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsNumber()
  @Min(0)
  maxIncrease?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsNumber()
  @Min(0)
  max?: number;

  @ApiPropertyOptional({ description: 'Lower bound (shadow_agreement)' })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(1)
  min?: number;

  @ApiPropertyOptional({ description: 'shadow_agreement of regressors: answers within this absolute difference agree (default 0.01)' })
  @IsOptional()
  @IsNumber()
  @Min(0)
  tolerance?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsInt()
  @Min(1)
  minSamples?: number;
}

export class ShadowDirectiveDto {
  @ApiProperty({ description: 'Percent of the application inferences mirrored to the candidate (0, 100]', example: 10 })
  @IsNumber()
  @Min(0.001)
  @Max(100)
  samplePercent: number;

  @ApiPropertyOptional({ description: 'The shadow ends on a device after this many evaluated inferences' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  maxSamples?: number;

  @ApiProperty({ description: 'The shadow ends on a device this long after the candidate was loaded', example: 3600 })
  @IsInt()
  @Min(1)
  @Max(7 * 86_400)
  durationSeconds: number;
}

export class WaveDto {
  @ApiPropertyOptional({
    enum: ['install', 'shadow'],
    default: 'install',
    description: 'shadow: the wave runs the version beside the active one on the same inputs and never switches (gate it with shadow_* metrics)',
  })
  @IsOptional()
  @IsIn(['install', 'shadow'])
  action?: 'install' | 'shadow';

  @ApiPropertyOptional({ type: ShadowDirectiveDto, description: 'Required for a shadow wave' })
  @IsOptional()
  @ValidateNested()
  @Type(() => ShadowDirectiveDto)
  shadow?: ShadowDirectiveDto;

  @ApiPropertyOptional({ description: 'Cumulative percent of the target covered once this wave is done' })
  @IsOptional()
  @IsNumber()
  percent?: number;

  @ApiPropertyOptional({ description: 'Cumulative device count covered once this wave is done' })
  @IsOptional()
  @IsInt()
  count?: number;

  @ApiPropertyOptional({ default: 0 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(30 * 86_400)
  bakeSeconds?: number;

  @ApiPropertyOptional({ default: 100, description: 'Percent of the wave that must commit before the next wave' })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(100)
  successPercent?: number;

  @ApiPropertyOptional({ type: FailureConditionDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => FailureConditionDto)
  failure?: FailureConditionDto;

  @ApiPropertyOptional({ description: 'The next wave waits for POST /rollouts/{id}/advance' })
  @IsOptional()
  @IsBoolean()
  manualApproval?: boolean;

  @ApiPropertyOptional({ type: [GateDto] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @ValidateNested({ each: true })
  @Type(() => GateDto)
  gates?: GateDto[];

  @ApiPropertyOptional({ default: 500 })
  @IsOptional()
  @IsInt()
  @Min(1)
  minSamples?: number;

  @ApiPropertyOptional({ default: 300 })
  @IsOptional()
  @IsInt()
  @Min(10)
  @Max(86_400)
  windowSeconds?: number;

  @ApiPropertyOptional({ enum: ['pause', 'rollback'] })
  @IsOptional()
  @IsIn(['pause', 'rollback'])
  onGateFailure?: 'pause' | 'rollback';
}

export class RampDto {
  @ApiProperty({ description: 'Devices notified in the first minute' })
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  ratePerMinute: number;

  @ApiProperty({ description: 'Each minute allows this factor more than the previous one (1..10)' })
  @IsNumber()
  @Min(1)
  @Max(10)
  growthFactor: number;
}

export class MaintenanceWindowDto {
  @ApiProperty({ example: '0 2 * * *' })
  @IsString()
  @MaxLength(128)
  cron: string;

  @ApiProperty({ example: 7200 })
  @IsInt()
  @Min(60)
  @Max(7 * 86_400)
  durationSeconds: number;

  @ApiProperty({ example: 'Europe/Berlin' })
  @IsString()
  @MaxLength(64)
  timeZone: string;
}

export class RetriesDto {
  @ApiProperty({ description: 'Retries for failures with a transient code' })
  @IsInt()
  @Min(0)
  @Max(20)
  max: number;

  @ApiPropertyOptional({ default: 30 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(86_400)
  backoffSeconds?: number;
}

export class CreateRolloutDto {
  @ApiProperty({ example: 'detector' })
  @Matches(MODEL_NAME_PATTERN, { message: 'model must be a model name' })
  model: string;

  @ApiProperty({ example: '2.1.0' })
  @Matches(SEMVER, { message: 'version must be a semver version' })
  version: string;

  @ApiProperty({ type: TargetDto })
  @ValidateNested()
  @Type(() => TargetDto)
  target: TargetDto;

  @ApiProperty({ type: [WaveDto] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(50)
  @ValidateNested({ each: true })
  @Type(() => WaveDto)
  waves: WaveDto[];

  @ApiPropertyOptional({ default: true, description: 'false allows a last wave below 100 % of the target' })
  @IsOptional()
  @IsBoolean()
  coverAll?: boolean;

  @ApiPropertyOptional({
    enum: ['pause', 'rollback', 'abort'],
    default: 'pause',
    description: 'What a met failure condition does; `abort` is the old name of `rollback`, accepted and stored as `rollback`',
  })
  @IsOptional()
  @IsIn(['pause', 'rollback', 'abort'])
  onFailure?: 'pause' | 'rollback' | 'abort';

  @ApiPropertyOptional({ enum: ['pause', 'rollback'], default: 'pause', description: 'Default for waves with gates' })
  @IsOptional()
  @IsIn(['pause', 'rollback'])
  onGateFailure?: 'pause' | 'rollback';

  @ApiPropertyOptional({ type: RampDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => RampDto)
  ramp?: RampDto;

  @ApiPropertyOptional()
  @IsOptional()
  @IsInt()
  @Min(1)
  maxInFlight?: number;

  @ApiPropertyOptional({ description: 'ISO 8601; default now' })
  @IsOptional()
  @IsISO8601({ strict: true })
  startAt?: string;

  @ApiPropertyOptional({ description: 'ISO 8601; no new device is told after this' })
  @IsOptional()
  @IsISO8601({ strict: true })
  endAt?: string;

  @ApiPropertyOptional({ type: [MaintenanceWindowDto] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => MaintenanceWindowDto)
  maintenanceWindows?: MaintenanceWindowDto[];

  @ApiPropertyOptional({ enum: ['install', 'download-only'], default: 'install' })
  @IsOptional()
  @IsIn(['install', 'download-only'])
  action?: 'install' | 'download-only';

  @ApiPropertyOptional({ default: 3600 })
  @IsOptional()
  @IsInt()
  @Min(5)
  @Max(7 * 86_400)
  timeoutSeconds?: number;

  @ApiPropertyOptional({ type: RetriesDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => RetriesDto)
  retries?: RetriesDto;

  @ApiPropertyOptional({ description: 'Devices that start matching later join the last wave' })
  @IsOptional()
  @IsBoolean()
  dynamic?: boolean;

  @ApiPropertyOptional({ default: 0, description: 'A higher priority takes devices from overlapping rollouts' })
  @IsOptional()
  @IsInt()
  @Min(-1000)
  @Max(1000)
  priority?: number;
}
