import { Body, Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { Page } from '../infra/http/keyset-page.js';
import { Untimed } from '../infra/http/request-timeout.js';
import { CreateModelDto } from './dto/create-model.dto.js';
import { PageQueryDto } from './dto/page-query.dto.js';
import type { ModelSummary } from './models.repository.js';
import { ModelsService, type VersionView } from './models.service.js';
import { RequireRole } from '../access/access.decorators.js';

@ApiTags('models')
@ApiBearerAuth()
@Controller('api/v1/models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Register a model name' })
  create(@Body() dto: CreateModelDto): Promise<ModelSummary> {
    return this.models.createModel(dto.name, dto.description);
  }

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'List models' })
  list(@Query() query: PageQueryDto): Promise<Page<ModelSummary>> {
    return this.models.listModels(query.limit, query.after);
  }

  @Get(':name')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'A model, with its latest version' })
  get(@Param('name') name: string): Promise<ModelSummary> {
    return this.models.getModel(name);
  }

  @Post(':name/versions')
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Upload a model version',
    description:
      'multipart/form-data: field `version` (strict semver), optional field `metadata` (JSON: runtime, framework, compatibility, ' +
      'referenceDistribution, notes, variants: the builds of the version, most preferred first, each {name, files, runtime?, framework?, compatibility?}), ' +
      'then one or more `file` parts. Fields must come before files. Files stream to the artifact ' +
      'store and are published as TUF targets before the version becomes visible.',
  })
  @ApiConsumes('multipart/form-data')
  // Streams up to MAX_ARTIFACT_BYTES: a multi-gigabyte body outlives HTTP_REQUEST_TIMEOUT_MS.
  @Untimed()
  @ApiBody({
    schema: {
      type: 'object',
      required: ['version', 'file'],
      properties: {
        version: { type: 'string', example: '1.2.0' },
        metadata: { type: 'string', description: 'JSON object', example: '{"runtime":"onnx","compatibility":{"hardwareClasses":["jetson-orin"]}}' },
        file: { type: 'array', items: { type: 'string', format: 'binary' } },
      },
    },
  })
  upload(@Param('name') name: string, @Req() req: Request): Promise<VersionView> {
    return this.models.uploadVersion(name, req);
  }

  @Get(':name/versions')
  @RequireRole('viewer')
  @ApiOperation({ summary: "List a model's versions" })
  listVersions(@Param('name') name: string, @Query() query: PageQueryDto): Promise<Page<VersionView>> {
    return this.models.listVersions(name, query.limit, query.after);
  }

  @Get(':name/versions/:version')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'One model version: files, metadata and builds' })
  getVersion(@Param('name') name: string, @Param('version') version: string): Promise<VersionView> {
    return this.models.describeVersion(name, version);
  }
}
