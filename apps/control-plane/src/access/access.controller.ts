import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal, RequireRole } from './access.decorators.js';
import { AccessService, type CreatedApiKey } from './access.service.js';
import { AuditLogRepository } from './audit-log.repository.js';
import { CreateApiKeyDto } from './dto/create-api-key.dto.js';

@ApiTags('access')
@ApiBearerAuth()
@Controller('api/v1')
export class AccessController {
  constructor(
    private readonly access: AccessService,
    private readonly audit: AuditLogRepository,
  ) {}

  @Post('api-keys')
  @RequireRole('admin')
  @ApiOperation({ summary: 'Create an API key (the key is shown once)' })
  create(@Body() dto: CreateApiKeyDto): Promise<CreatedApiKey> {
    return this.access.createKey(dto.name, dto.role);
  }

  @Get('api-keys')
  @RequireRole('admin')
  @ApiOperation({ summary: 'List API keys' })
  async list(): Promise<{ items: { id: string; name: string; role: string; createdAt: Date; revokedAt: Date | null; lastUsedAt: Date | null }[] }> {
    const keys = await this.access.listKeys();
    return { items: keys.map(({ id, name, role, createdAt, revokedAt, lastUsedAt }) => ({ id, name, role, createdAt, revokedAt, lastUsedAt })) };
  }

  @Delete('api-keys/:id')
  @RequireRole('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API key' })
  revoke(@Param('id', new ParseUUIDPipe()) id: string): Promise<void> {
    return this.access.revokeKey(id);
  }

  /** Who am I: lets the CLI and dashboard show what the key may do. */
  @Get('whoami')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'The API key making this request' })
  whoami(@CurrentPrincipal() principal: Principal | undefined): { id?: string; name?: string; role?: string } {
    return { id: principal?.id, name: principal?.name, role: principal?.role };
  }

  @Get('audit-log')
  @RequireRole('admin')
  @ApiOperation({ summary: 'Recent audit log entries' })
  async auditLog(): Promise<{ items: unknown[] }> {
    return { items: await this.audit.page(200) };
  }
}
