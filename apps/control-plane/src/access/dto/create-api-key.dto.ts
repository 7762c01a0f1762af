import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsString, Length } from 'class-validator';
import { ROLES, type Role } from '../role.js';

export class CreateApiKeyDto {
  @ApiProperty({ example: 'ci-pipeline' })
  @IsString()
  @Length(1, 128)
  name: string;

  @ApiProperty({ enum: ROLES })
  @IsIn(ROLES)
  role: Role;
}
