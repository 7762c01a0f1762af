import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { type Observable, map } from 'rxjs';
import { FleetStreamService } from './fleet-stream.service.js';
import { RequireRole } from '../access/access.decorators.js';

@ApiTags('fleet')
@ApiBearerAuth()
@Controller('api/v1/fleet')
export class FleetStreamController {
  constructor(private readonly fleet: FleetStreamService) {}

  /**
   * Server-Sent Events: the fleet summary (same shape as GET /api/v1/fleet/summary) every 2 s.
   * EventSource cannot send headers, so the key may be given as `?key=` (viewer role).
   */
  @Sse('stream')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Live fleet summary (Server-Sent Events, one `summary` event every 2 s)' })
  @ApiProduces('text/event-stream')
  stream(): Observable<MessageEvent> {
    return this.fleet.summaries$.pipe(map((summary) => ({ type: 'summary', data: { ...summary, at: new Date().toISOString() } })));
  }
}
