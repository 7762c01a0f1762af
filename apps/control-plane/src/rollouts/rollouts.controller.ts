import { Body, Controller, Get, HttpCode, HttpStatus, type MessageEvent, Param, ParseUUIDPipe, Post, Query, Res, Sse } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { concat, distinctUntilChanged, from, interval, map, merge, Observable, switchMap, takeWhile } from 'rxjs';
import { CurrentPrincipal, RequireRole, type Principal } from '../access/access.decorators.js';
import type { Page } from '../infra/http/keyset-page.js';
import { CreateRolloutDto } from './dto/create-rollout.dto.js';
import { ListRolloutDevicesQueryDto, ListRolloutsQueryDto, PageQueryDto } from './dto/rollout-queries.dto.js';
import { RolloutEngine } from './rollout-engine.js';
import type { RolloutDeviceRow, RolloutEventRow } from './rollout.repository.js';
import { type CreatedRollout, type RolloutDetail, type RolloutSummary, RolloutsService } from './rollouts.service.js';

const STREAM_POLL_MS = 1_000;

function actorOf(principal: Principal | undefined): string {
  return principal ? `${principal.kind}:${principal.name}` : 'unknown';
}

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(
    private readonly rollouts: RolloutsService,
    private readonly engine: RolloutEngine,
  ) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Start a staged rollout of a model version',
    description:
      '201 with the materialised rollout; 202 with state `preparing` for an explicit id list of more than 1,000 ids, whose membership the engine materialises afterwards (poll the rollout; its `prepared` or `preparation-failed` event says how it went).',
  })
  async create(
    @Body() dto: CreateRolloutDto,
    @CurrentPrincipal() principal: Principal | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CreatedRollout> {
    const created = await this.rollouts.create(dto, principal);
    if (created.state === 'preparing') response.status(HttpStatus.ACCEPTED);
    return created;
  }

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'List rollouts' })
  list(@Query() query: ListRolloutsQueryDto): Promise<Page<RolloutSummary>> {
    return this.rollouts.list(query);
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'A rollout: waves, progress and gate values' })
  get(@Param('id', new ParseUUIDPipe()) id: string): Promise<RolloutDetail> {
    return this.rollouts.describe(id);
  }

  @Get(':id/devices')
  @RequireRole('viewer')
  @ApiOperation({ summary: "A rollout's devices and where each one is" })
  devices(@Param('id', new ParseUUIDPipe()) id: string, @Query() query: ListRolloutDevicesQueryDto): Promise<Page<RolloutDeviceRow>> {
    return this.rollouts.devices(id, query);
  }

  @Get(':id/events')
  @RequireRole('viewer')
  @ApiOperation({ summary: "A rollout's event log" })
  events(@Param('id', new ParseUUIDPipe()) id: string, @Query() query: PageQueryDto): Promise<Page<RolloutEventRow>> {
    return this.rollouts.events(id, query);
  }

  /**
   * Server-Sent Events: a `progress` event with the rollout detail whenever it changes (checked
   * after each engine tick and at least every second), ending after the rollout is finished.
   * EventSource cannot send headers: pass the API key as `?key=`.
   */
  @Sse(':id/stream')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Live rollout progress (Server-Sent Events)' })
  stream(@Param('id', new ParseUUIDPipe()) id: string): Observable<MessageEvent> {
    const ticks = new Observable<void>((subscriber) =>
      this.engine.onTick((ids) => {
        if (ids.includes(id)) subscriber.next();
      }),
    );
    const snapshots = concat(from([0]), merge(interval(STREAM_POLL_MS), ticks)).pipe(
      switchMap(() => from(this.rollouts.describe(id))),
      map((detail) => ({ detail, json: JSON.stringify(detail) })),
      distinctUntilChanged((a, b) => a.json === b.json),
    );
    return snapshots.pipe(
      takeWhile(({ detail }) => detail.finishedAt === null, true),
      map(({ detail }) => ({ type: 'progress', data: detail }) satisfies MessageEvent),
    );
  }

  @Post(':id/pause')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Pause a rollout' })
  pause(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.pause(id, actorOf(principal));
  }

  @Post(':id/resume')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume a paused rollout' })
  resume(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.resume(id, actorOf(principal));
  }

  @Post(':id/advance')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Start the next wave now (a manual-approval gate)' })
  advance(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.advance(id, actorOf(principal));
  }

  @Post(':id/cancel')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a rollout: nobody new is told, devices already told finish' })
  cancel(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.cancel(id, actorOf(principal));
  }

  @Post(':id/abort')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Abort a rollout: every device that was told is reverted' })
  abort(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.abort(id, actorOf(principal));
  }

  @Post(':id/retry')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Give failed and timed-out devices a fresh retry budget' })
  retry(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.retry(id, actorOf(principal));
  }

  @Post(':id/install')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({ summary: 'Download-only rollout: tell downloaded devices to install' })
  install(@Param('id', new ParseUUIDPipe()) id: string, @CurrentPrincipal() principal: Principal | undefined): Promise<RolloutDetail> {
    return this.rollouts.install(id, actorOf(principal));
  }
}
