import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { type DeviceCredentials, type EnrollRequest, enrollRequestSchema } from '@fleetline/protocol';
import { RequireRole, Public } from '../../access/access.decorators.js';
import { SourceLimits, sourceAddress } from '../../infra/rate-limit/source-limits.js';
import { requestOrigin } from '../devices.controller.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';
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
    private readonly limits: SourceLimits,
  ) {}

  /** Creates an enrollment token; the answer holds the token, which is never shown again. */
  @ApiBearerAuth()
  @Post('enrollment-tokens')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Create an enrollment token (shown once)' })
  createToken(@Body() dto: CreateEnrollmentTokenDto): Promise<CreatedEnrollmentToken> {
    return this.tokens.create(dto);
  }

  @ApiBearerAuth()
  @Get('enrollment-tokens')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'List enrollment tokens' })
  async listTokens(): Promise<{ items: EnrollmentTokenView[] }> {
    return { items: await this.tokens.list() };
  }

  @ApiBearerAuth()
  @Delete('enrollment-tokens/:id')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an enrollment token' })
  revokeToken(@Param('id', new ParseUUIDPipe()) id: string): Promise<void> {
    return this.tokens.revoke(id);
  }

  /** A device enrolls itself with a token (no API key); the answer holds its secret, shown once. */
  @Public()
  @Post('enroll')
  @ApiBody({ description: 'EnrollRequest (@fleetline/protocol enrollRequestSchema): { token, id?, name?, tags?, inventory? }' })
  @ApiOperation({ summary: 'Enroll a device with an enrollment token' })
  async enroll(
    @Body(new ZodBodyPipe(enrollRequestSchema)) body: EnrollRequest,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ): Promise<DeviceCredentials> {
    // Per source address (ENROLL_RATE_*), across replicas with REDIS_URL: bounds the database work and token guessing one source can cause.
    const waitMs = await this.limits.takeEnroll(sourceAddress(request));
    if (waitMs > 0) {
      response.setHeader('Retry-After', String(Math.ceil(waitMs / 1000)));
      throw new DeviceException(DeviceErrorCode.RateLimited, `too many enrollments from this address; retry in ${Math.ceil(waitMs / 1000)} s`);
    }
    return this.enrollment.enroll(body, requestOrigin(request));
  }
}
