import { Injectable } from '@nestjs/common';
import type { BrokerCheckKind, DenyReason } from './broker-auth.decision.js';

export type BrokerAuthResult = 'allow' | 'deny';

/**
 * Outcomes of the broker-facing checks as plain counters (the hot path never calls prom-client);
 * exported as fleetline_broker_auth_total{kind,result,reason}. Every label comes from a closed
 * set (BROKER_CHECK_KINDS, DenyReason), so the series count is bounded whatever devices send.
 */
@Injectable()
export class BrokerAuthMetrics {
  private readonly counts = new Map<string, { kind: BrokerCheckKind; result: BrokerAuthResult; reason: DenyReason | 'none'; count: number }>();

  allowed(kind: BrokerCheckKind): void {
    this.add(kind, 'allow', 'none');
  }

  denied(kind: BrokerCheckKind, reason: DenyReason): void {
    this.add(kind, 'deny', reason);
  }

  count(kind: BrokerCheckKind, result: BrokerAuthResult, reason?: DenyReason | 'none'): number {
    let total = 0;
    for (const entry of this.counts.values()) {
      if (entry.kind === kind && entry.result === result && (reason === undefined || entry.reason === reason)) total += entry.count;
    }
    return total;
  }

  snapshot(): { kind: BrokerCheckKind; result: BrokerAuthResult; reason: DenyReason | 'none'; count: number }[] {
    return [...this.counts.values()].map((entry) => ({ ...entry }));
  }

  private add(kind: BrokerCheckKind, result: BrokerAuthResult, reason: DenyReason | 'none'): void {
    const key = `${kind}|${result}|${reason}`;
    const entry = this.counts.get(key);
    if (entry) entry.count++;
    else this.counts.set(key, { kind, result, reason, count: 1 });
  }
}
