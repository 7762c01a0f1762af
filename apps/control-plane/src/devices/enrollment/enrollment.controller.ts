import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { type DeviceCredentials, type EnrollRequest, enrollRequestSchema } from '@fleetline/protocol';
import { Public } from '../../access/access.decorators.js';
import { requestOrigin } from '../devices.controller.js';
import { ZodBodyPipe } from '../dto/zod-body.pipe.js';
import { CreateEnrollmentTokenDto } from './dto/create-enrollment-token.dto.js';
import { EnrollmentService } from './enrollment.service.js';
import { type CreatedEnrollmentToken, EnrollmentTokensService } from './enrollment-tokens.service.js';
import type { EnrollmentTokenView } from './enrollment-tokens.repository.js';

@ApiTags('enrollment')
@Controller('api/v1')
export class EnrollmentController {
  constructor(
    private readonly tokens: EnrollmentTokensService,
    private readonly enrollment: EnrollmentService,
  ) {}

  /** Creates an enrollment token; the answer holds the token, which is never shown again. */
  @ApiBearerAuth()
  @Post('enrollment-tokens')
  createToken(@Body() dto: CreateEnrollmentTokenDto): Promise<CreatedEnrollmentToken> {
    return this.tokens.create(dto);
  }

  @ApiBearerAuth()
  @Get('enrollment-tokens')
  async listTokens(): Promise<{ items: EnrollmentTokenView[] }> {
    return { items: await this.tokens.list() };
  }

  @ApiBearerAuth()
  @Delete('enrollment-tokens/:id')
  @HttpCode(204)
  revokeToken(@Param('id', new ParseUUIDPipe()) id: string): Promise<void> {
    return this.tokens.revoke(id);
  }

  /** A device enrolls itself with a token (no API key); the answer holds its secret, shown once. */
  @Public()
  @Post('enroll')
  @ApiBody({ description: 'EnrollRequest (@fleetline/protocol enrollRequestSchema): { token, id?, name?, tags?, inventory? }' })
  enroll(@Body(new ZodBodyPipe(enrollRequestSchema)) body: EnrollRequest, @Req() request: Request): Promise<DeviceCredentials> {
    return this.enrollment.enroll(body, requestOrigin(request));
  }
}
