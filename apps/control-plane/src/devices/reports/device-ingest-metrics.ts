/**
 * Counters of device messages the control plane ingested, by stream and outcome. Plain numbers
 * here; the metrics feature exports them (one provider instance per app, exported by DevicesModule).
 */
export type IngestStream = 'reported' | 'inventory' | 'presence';
export type IngestOutcome = 'accepted' | 'duplicate' | 'stale' | 'malformed' | 'unknownDevice';

export const INGEST_OUTCOMES: readonly IngestOutcome[] = ['accepted', 'duplicate', 'stale', 'malformed', 'unknownDevice'];

export class DeviceIngestMetrics {
  private readonly counts = new Map<string, number>();

  record(stream: IngestStream, outcome: IngestOutcome, n = 1): void {
    if (n <= 0) return;
    const key = `${stream}:${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  /** One outcome, for one stream or summed over all of them. */
  count(outcome: IngestOutcome, stream?: IngestStream): number {
    if (stream) return this.counts.get(`${stream}:${outcome}`) ?? 0;
    let total = 0;
    for (const s of ['reported', 'inventory', 'presence'] as const) total += this.counts.get(`${s}:${outcome}`) ?? 0;
    return total;
  }

  get accepted(): number {
    return this.count('accepted');
  }
  get duplicate(): number {
    return this.count('duplicate');
  }
  get stale(): number {
    return this.count('stale');
  }
  get malformed(): number {
    return this.count('malformed');
  }
  get unknownDevice(): number {
    return this.count('unknownDevice');
  }

  /** Every (stream, outcome) pair with its count, zeros included, for exporters. */
  snapshot(): { stream: IngestStream; outcome: IngestOutcome; count: number }[] {
    const out: { stream: IngestStream; outcome: IngestOutcome; count: number }[] = [];
    for (const stream of ['reported', 'inventory', 'presence'] as const) {
      for (const outcome of INGEST_OUTCOMES) out.push({ stream, outcome, count: this.count(outcome, stream) });
    }
    return out;
  }
}
