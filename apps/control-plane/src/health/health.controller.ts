import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { Public } from '../access/access.decorators.js';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';

// Probes for orchestrators and load balancers (docs/deployment.md), not part of the admin API.
@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(MqttGateway) private readonly mqtt: MqttGateway,
  ) {}

  /** Liveness: the process answers. */
  @Public()
  @Get('healthz')
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: the database answers and the broker is up. */
  @Public()
  @Get('readyz')
  async readyz(): Promise<{ status: 'ready'; database: 'ok'; mqtt: string }> {
    try {
      await this.dataSource.query('SELECT 1');
    } catch (err) {
      throw new ServiceUnavailableException(`database: ${String(err)}`);
    }
    return { status: 'ready', database: 'ok', mqtt: this.mqtt.publicUrl() };
  }
}
