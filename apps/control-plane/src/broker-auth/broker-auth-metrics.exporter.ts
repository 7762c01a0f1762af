import { Injectable, type OnModuleInit } from '@nestjs/common';
import { Counter } from 'prom-client';
import { METRIC } from '../metrics/metric-names.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { BrokerAuthMetrics } from './broker-auth.metrics.js';

/** Adds fleetline_broker_auth_total to this instance's /metrics registry, copied from the plain counters at scrape time. */
@Injectable()
export class BrokerAuthMetricsExporter implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly counts: BrokerAuthMetrics,
  ) {}

  onModuleInit(): void {
    const counts = this.counts;
    new Counter({
      name: METRIC.brokerAuth,
      help: 'Authentication and ACL checks an external broker asked the control plane, by kind (connect, superuser, publish, subscribe, read, unsubscribe, request), result and denial reason ("none" when allowed).',
      labelNames: ['kind', 'result', 'reason'],
      registers: [this.metrics.registry],
      collect(this: Counter<'kind' | 'result' | 'reason'>) {
        this.reset();
        // A zero series for the connect denials keeps "no refusals yet" a visible 0 for alerts.
        this.inc({ kind: 'connect', result: 'deny', reason: 'bad-credentials' }, 0);
        for (const { kind, result, reason, count } of counts.snapshot()) this.inc({ kind, result, reason }, count);
      },
    });
  }
}
