import { MODEL_NAME_PATTERN } from '@fleetline/protocol';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';

export class CreateModelDto {
  @ApiProperty({ example: 'defect-detector', description: '1-64 chars of [a-z0-9._-], starting alphanumeric' })
  @IsString()
  @Matches(MODEL_NAME_PATTERN, { message: 'name must be 1-64 chars of [a-z0-9._-], starting alphanumeric' })
  name: string;

  @ApiPropertyOptional({ maxLength: 2000 })
  @IsOptional()
  @IsString()
  @MaxLength(2000)
  description?: string;
}
