/**
 * Counters the broker gateways keep for /metrics and for tests that prove each denial.
 * Plain numbers here; the metrics feature exports them to Prometheus.
 */
export class BrokerMetrics {
  readonly denials = new Map<string, number>();
  lastDenial?: { kind: string; reason: string };

  denied(kind: 'connect' | 'publish' | 'subscribe' | 'packet-size' | 'tls', reason: string): void {
    this.denials.set(kind, (this.denials.get(kind) ?? 0) + 1);
    this.lastDenial = { kind, reason };
  }

  count(kind: string): number {
    return this.denials.get(kind) ?? 0;
  }
}
