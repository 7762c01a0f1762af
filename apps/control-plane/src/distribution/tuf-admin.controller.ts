import { Body, Controller, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
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

  @Get('online-keys')
  @ApiOperation({ summary: 'Public keys of the snapshot and timestamp keys this server signs with (for the root the operator signs)' })
  onlineKeys(): ReturnType<TufRepositoryService['onlineKeys']> {
    return this.tuf.onlineKeys();
  }

  @Post('online-keys/:role/next')
  @HttpCode(200)
  @ApiOperation({ summary: 'Stage a new snapshot or timestamp key for a rotation; it is used once a root trusting it is published' })
  stageOnlineKey(@Param('role') role: string): ReturnType<TufRepositoryService['stageOnlineKey']> {
    if (role !== 'snapshot' && role !== 'timestamp') {
      throw new DistributionException(DistributionErrorCode.InvalidMetadata, 'only the snapshot and timestamp keys live on the server');
    }
    return this.tuf.stageOnlineKey(role);
  }

  @Get('targets/pending')
  @ApiOperation({ summary: 'Current signed targets and the unsigned next version listing every upload awaiting a signature' })
  pendingTargets(): ReturnType<TufRepositoryService['pendingTargets']> {
    return this.tuf.pendingTargets();
  }

  @Get('metadata/:file')
  @ApiOperation({ summary: 'Signed root or targets metadata: root.json, {N}.root.json, targets.json (what the operator verifies against)' })
  async metadataFile(@Param('file') file: string): Promise<unknown> {
    const match = /^(?:(\d{1,9})\.)?(root|targets)\.json$/.exec(file);
    if (!match) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no metadata file ${file}`);
    const role = match[2] as 'root' | 'targets';
    const signed = match[1] ? await this.tuf.byVersion(role, Number(match[1])) : await this.tuf.latest(role);
    return JSON.parse(signed.json) as unknown;
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
