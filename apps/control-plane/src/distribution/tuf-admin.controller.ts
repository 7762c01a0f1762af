import { Body, Controller, Get, HttpCode, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireRole } from '../access/access.decorators.js';
import { DistributionErrorCode, DistributionException } from './distribution.exception.js';
import { TufRepositoryService } from './tuf-repository.service.js';

/** Operating the TUF repository with offline keys (docs/tuf.md). Admin API keys only. */
@ApiTags('distribution')
@ApiBearerAuth()
@RequireRole('admin')
@Controller('api/v1/tuf/admin')
export class TufAdminController {
  constructor(private readonly tuf: TufRepositoryService) {}

  @Get('status')
  @ApiOperation({ summary: 'Version, expiry, trusted key ids and online/offline state of each top-level role' })
  status(): ReturnType<TufRepositoryService['status']> {
    return this.tuf.status();
  }

  @Put('root')
  @HttpCode(200)
  @ApiOperation({ summary: 'Publish root N+1 signed offline (key rotation); body {root, targets?}' })
  replaceRoot(@Body() body: Record<string, unknown>): Promise<{ rootVersion: number }> {
    if (typeof body['root'] !== 'object' || body['root'] === null) {
      throw new DistributionException(
        DistributionErrorCode.InvalidMetadata,
        'body must be {"root": <signed root metadata>, "targets"?: <signed targets metadata>}',
      );
    }
    return this.tuf.replaceRoot(body['root'], body['targets']);
  }

  @Put('targets')
  @HttpCode(200)
  @ApiOperation({ summary: 'Publish a targets version signed offline; body is the signed targets metadata' })
  replaceTargets(@Body() body: Record<string, unknown>): Promise<{ targetsVersion: number }> {
    return this.tuf.replaceTargets(body);
  }
}
